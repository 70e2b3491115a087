"""Django's database session store, with three changes: an unreachable database is a server error, a
cookie that is no session key of ours is no session, and a session can ask to be told when its row is gone.

Django's store turns every database error while updating a session into `UpdateError`, which the
session middleware answers with 400 Bad Request ("the session was deleted before the request
completed"). That is right when the row is gone (the forced UPDATE touched nothing), wrong when
PostgreSQL is down or restarting: the client did nothing wrong, and a 400 both tells it not to
retry and hides the outage from 5xx alerting. Here the driver's own errors propagate instead, so
such a request fails with the 500 page like any other (tests/faults/test_postgres_restart.py).

`after_delete` is for logout: Django's `logout()` sends `user_logged_out` before it deletes the
session, so anything announced from the signal races a socket handshake that reads the session in
between (docs/reliability.md, probe attack 3). Announced from here, it follows the delete.

And Django looks any cookie value of 8 characters or more up in the database: one with a NUL (`"\\000"` in a
quoted cookie) failed there with DataError, a 500 for the page and for the WebSocket handshake alike.
"""

from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, UpdateError
from django.db import InterfaceError, OperationalError

_KEY_CHARS = frozenset(VALID_KEY_CHARS)

# What a session's sockets know it by: set at login and carried over when Django cycles the key (a password
# change does), so a later logout still reaches the tabs that connected with the old key.
SOCKET_SESSION_ID = "_socket_session_id"


def session_socket_id(session) -> str:
    """The session's id for its sockets; its key for a session from before there were ids."""
    return session.get(SOCKET_SESSION_ID) or session.session_key


class SessionStore(db.SessionStore):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._after_delete: list[Callable[[str], None]] = []

    def after_delete(self, callback: Callable[[str], None]) -> None:
        """Call `callback(session_key)` right after this session's row is deleted (a logout's flush)."""
        self._after_delete.append(callback)

    def _validate_session_key(self, key):
        # Only what _get_new_session_key() makes: anything else would be looked up in vain, or fail.
        return super()._validate_session_key(key) and set(key) <= _KEY_CHARS

    def save(self, must_create=False):
        try:
            super().save(must_create=must_create)
        except UpdateError as error:
            if isinstance(error.__context__, (OperationalError, InterfaceError)):
                raise error.__context__ from None  # the database is unreachable: not a deleted session
            raise

    def delete(self, session_key=None):
        deleted_key = session_key or self.session_key
        super().delete(session_key)
        self._deleted(deleted_key)

    async def adelete(self, session_key=None):
        deleted_key = session_key or self.session_key
        await super().adelete(session_key)
        await sync_to_async(self._deleted)(deleted_key)

    def _deleted(self, session_key: str | None) -> None:
        if session_key is None or session_key != self.session_key:
            return  # never saved, or cycle_key() dropping the old key of a session that lives on
        callbacks, self._after_delete = self._after_delete, []
        for callback in callbacks:
            callback(session_key)
