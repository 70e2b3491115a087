"""Django's database session store, with one correction: an unreachable database is a server error.

Django's store turns every database error while updating a session into `UpdateError`, which the
session middleware answers with 400 Bad Request ("the session was deleted before the request
completed"). That is right when the row is gone (the forced UPDATE touched nothing), wrong when
PostgreSQL is down or restarting: the client did nothing wrong, and a 400 both tells it not to
retry and hides the outage from 5xx alerting. Here the driver's own errors propagate instead, so
such a request fails with the 500 page like any other (tests/faults/test_postgres_restart.py).
"""

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.db import InterfaceError, OperationalError


class SessionStore(db.SessionStore):
    def save(self, must_create=False):
        try:
            super().save(must_create=must_create)
        except UpdateError as error:
            if isinstance(error.__context__, (OperationalError, InterfaceError)):
                raise error.__context__  # the database is unreachable: not a deleted session
            raise
