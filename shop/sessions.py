"""Django's database session store, with two corrections: an unreachable database is a server error, and a
cookie that is no session key of ours is no session.

Django's store turns every database error while updating a session into `UpdateError`, which the
session middleware answers with 400 Bad Request ("the session was deleted before the request
completed"). That is right when the row is gone (the forced UPDATE touched nothing), wrong when
PostgreSQL is down or restarting: the client did nothing wrong, and a 400 both tells it not to
retry and hides the outage from 5xx alerting. Here the driver's own errors propagate instead, so
such a request fails with the 500 page like any other (tests/faults/test_postgres_restart.py).

And Django looks any cookie value of 8 characters or more up in the database: one with a NUL (`"\\000"` in a
quoted cookie) failed there with DataError, a 500 for the page and for the WebSocket handshake alike.
"""

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, UpdateError
from django.db import InterfaceError, OperationalError

_KEY_CHARS = frozenset(VALID_KEY_CHARS)


class SessionStore(db.SessionStore):
    def _validate_session_key(self, key):
        # Only what _get_new_session_key() makes: anything else would be looked up in vain, or fail.
        return super()._validate_session_key(key) and set(key) <= _KEY_CHARS

    def save(self, must_create=False):
        try:
            super().save(must_create=must_create)
        except UpdateError as error:
            if isinstance(error.__context__, (OperationalError, InterfaceError)):
                raise error.__context__  # the database is unreachable: not a deleted session
            raise
