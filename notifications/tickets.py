"""Connect tickets: what a signed-in page gives its socket so the handshake skips Django's session and user lookups.

The connect-token pattern of Phoenix and Centrifugo, bound to the session cookie (docs/protocol.md, "Connecting").
A ticket is signed with SECRET_KEY (django.core.signing, its own salt), lives NOTIFICATION_SOCKET_TICKET_MAX_AGE
seconds and names the user, a digest of the session key it was minted for, the session's socket id (what
`session.ended` names it by) and a digest of the user's session-auth hash. It is no credential on its own: the handshake
must carry that same session's cookie, and the connect checks, in the one database read it makes anyway, that
the session still exists, the user is active and the password is the one the ticket was minted under. So a
ticket is revoked by logout, password change and deactivation exactly as the session is, and a stolen ticket
without the cookie, or with another user's, opens nothing. A ticket that does not verify is ignored: the
handshake falls back to the session cookie alone, as before tickets (the page's own check).
"""

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import connection
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import User
from notifications.services import session_digest
from shop.sessions import session_socket_id

SALT = "notifications.socket-ticket"
# Longest text a ticket can be (a user id of 19 digits, three digests, the timestamp, the signature): longer is
# refused without being decoded.
MAX_LENGTH = 400


@dataclass(frozen=True)
class Ticket:
    """What a verified ticket says; the session's cookie still has to be the one it was minted for."""

    user_id: int
    socket_session: str  # session_digest of the session's socket id (`session.ended` messages name it so)
    auth_digest: str  # session_auth_digest of the user when minted: another after a new password


def socket_ticket_mint(*, user, session) -> str:
    """A ticket for one of this signed-in session's sockets (the page renders it; the socket's `hello` renews it)."""
    return socket_ticket_sign(
        user_id=user.pk,
        session_key=session.session_key,
        socket_session=session_digest(session_socket_id(session)),
        auth_digest=session_auth_digest(user),
    )


def session_auth_digest(user) -> str:
    """What a ticket carries of the user's session-auth hash: a digest, so no page or log ever holds the hash itself."""
    return session_digest(user.get_session_auth_hash())


def socket_ticket_sign(*, user_id: int, session_key: str, socket_session: str, auth_digest: str) -> str:
    """The ticket text for these values (for a socket that already has them: no session to read)."""
    payload = [user_id, session_digest(session_key), socket_session, auth_digest]
    return signing.TimestampSigner(salt=SALT).sign_object(payload)


def socket_ticket_read(*, text: str | None, session_key: str | None) -> Ticket | None:
    """The ticket if `text` is one this site signed, not older than its max age, for this session; else None."""
    if not text or not session_key or len(text) > MAX_LENGTH:
        return None
    try:
        payload = signing.TimestampSigner(salt=SALT).unsign_object(
            text, max_age=settings.NOTIFICATION_SOCKET_TICKET_MAX_AGE
        )
    except (signing.BadSignature, ValueError):  # forged, expired, or not a ticket at all
        return None
    if not _well_formed(payload):
        return None
    user_id, session, socket_session, auth_digest = payload
    if not constant_time_compare(session, session_digest(session_key)):
        return None  # minted for another session: another user's, or this browser's before a new login
    return Ticket(user_id=user_id, socket_session=socket_session, auth_digest=auth_digest)


def _well_formed(payload) -> bool:
    # Signed by us, so a shape of another version of the shop at most: refused all the same, never a 1011.
    return (
        isinstance(payload, list)
        and len(payload) == 4
        and type(payload[0]) is int
        and all(isinstance(part, str) for part in payload[1:])
    )


def socket_ticket_user(*, ticket: Ticket, session_key: str) -> User | None:
    """The ticket's user if its session still exists and it is still active with the same password; one query.

    Revocation: logout deletes the session row, a password change changes the session-auth hash, deactivation
    clears `is_active`; a session past its expiry counts as gone. A plain query, built once: through the ORM
    this read cost a handshake more than the rest of it (docs/performance.md, "Handshakes: connect tickets").
    """
    sql, attnames = _ticket_user_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [session_key, timezone.now(), ticket.user_id])
        row = cursor.fetchone()
    if row is None or not row[-1]:
        return None  # deactivated or deleted, or the session is gone
    user = User.from_db(connection.alias, attnames, row[:-1])
    if not constant_time_compare(session_auth_digest(user), ticket.auth_digest):
        return None  # a new password since the ticket was minted
    return user


@cache
def _ticket_user_sql() -> tuple[str, list[str]]:
    quote = connection.ops.quote_name
    user, session = User._meta, Session._meta
    fields = user.concrete_fields
    sql = (
        f"SELECT {', '.join(quote(field.column) for field in fields)},"
        f" EXISTS (SELECT 1 FROM {quote(session.db_table)} WHERE {quote(session.pk.column)} = %s"
        f" AND {quote(session.get_field('expire_date').column)} > %s)"
        f" FROM {quote(user.db_table)} WHERE {quote(user.pk.column)} = %s"
        f" AND {quote(user.get_field('is_active').column)}"
    )
    return sql, [field.attname for field in fields]
