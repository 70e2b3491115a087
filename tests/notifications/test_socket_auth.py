"""notifications.middleware.SocketAuth without a ticket: the handshake's session and user, as Channels' auth stack
gives them, in one copy of the scope (its tickets: tests/notifications/test_middleware.py)."""

import pytest
from asgiref.sync import sync_to_async

from notifications.middleware import SocketAuth
from tests.factories import UserFactory
from tests.notifications.test_consumer import session_key_for

pytestmark = [pytest.mark.django_db(transaction=True)]


async def scope_seen(headers: list[tuple[bytes, bytes]]) -> tuple[dict, dict]:
    """The server's scope, and the one the application behind SocketAuth received."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": "websocket", "path": "/ws/notifications/", "headers": headers}
    await SocketAuth(app)(scope, None, None)
    return scope, seen


async def test_a_logged_in_session_cookie_gives_the_application_its_session_and_user():
    user = await sync_to_async(UserFactory)()
    key = await sync_to_async(session_key_for)(user)

    server_scope, scope = await scope_seen([(b"cookie", f"other=1; sessionid={key}".encode())])

    assert (scope["user"].pk, scope["user"].is_authenticated) == (user.pk, True)
    assert scope["session"].session_key == key
    assert scope["cookies"] == {"other": "1", "sessionid": key}
    assert "user" not in server_scope  # one copy for the application; the server's scope is left alone


@pytest.mark.parametrize("cookie", [None, b"sessionid=not-a-session-of-ours", b"sessionid="])
async def test_no_cookie_or_no_session_of_ours_is_an_anonymous_user(cookie):
    _, scope = await scope_seen([(b"cookie", cookie)] if cookie is not None else [])

    assert scope["user"].is_authenticated is False
