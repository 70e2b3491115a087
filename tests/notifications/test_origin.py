"""The WebSocket origin check over the real stack (shop.asgi): the whole origin, scheme, host and port, or 403.

Every handshake below carries a logged-in customer's session cookie, as a browser sends it whichever page
opens the socket: accepted means that page would read the customer's notifications.
"""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from shop.asgi import application
from tests.factories import UserFactory
from tests.notifications.test_consumer import session_key_for

pytestmark = [pytest.mark.django_db(transaction=True)]

# tests/settings.py: ALLOWED_HOSTS = testserver, 127.0.0.1, localhost.
# (socket scheme, Host header, Origin headers)
SAME_SITE = [
    ("ws", "testserver", ["http://testserver"]),
    ("wss", "testserver", ["https://testserver"]),
    ("ws", "127.0.0.1:8000", ["http://127.0.0.1:8000"]),
    ("wss", "localhost:8443", ["https://localhost:8443"]),
    ("wss", "testserver:443", ["https://testserver"]),  # a default port, written or not, is the same port
    ("ws", "testserver", ["http://testserver:80"]),
    ("ws", "TestServer", ["http://testserver"]),  # host names in the Host header are case-insensitive
]
FOREIGN = [
    # another port of the same host: another application
    ("ws", "127.0.0.1:8000", ["http://127.0.0.1:9999"]),
    ("ws", "127.0.0.1:8000", ["http://127.0.0.1"]),
    ("ws", "testserver", ["http://testserver:8080"]),
    ("wss", "testserver", ["https://testserver:80"]),
    # another scheme: a plain-http page beside the https site, and the reverse
    ("wss", "testserver", ["http://testserver"]),
    ("ws", "testserver", ["https://testserver"]),
    ("wss", "localhost:8443", ["http://localhost:8443"]),
    # another of our host names is another origin, as for Django's CSRF check
    ("ws", "127.0.0.1:8000", ["http://localhost:8000"]),
    # look-alike hosts
    ("ws", "127.0.0.1", ["http://127.0.0.1.evil.com"]),
    ("ws", "127.0.0.1", ["http://evil127.0.0.1"]),
    ("ws", "localhost", ["http://localhost."]),
    ("ws", "localhost", ["http://localhost@evil.com"]),
    ("ws", "localhost", ["http://evil.com@localhost"]),
    ("ws", "localhost", ["http://evil.com#@localhost"]),
    ("ws", "localhost", ["http://localhost:80@evil.com"]),
    ("ws", "testserver", ["http://TESTSERVER"]),
    ("ws", "testserver", ["HTTP://testserver"]),
    ("ws", "testserver", ["http://testserver.evil.com"]),
    ("ws", "testserver", ["http://xn--testserver"]),
    # a host this site does not serve, even if the page and the socket agree (DNS rebinding)
    ("ws", "evil.com", ["http://evil.com"]),
    ("ws", "127.0.0.1:8000\r\nx", ["http://127.0.0.1:8000"]),
    # not an origin at all
    ("ws", "testserver", ["null"]),
    ("ws", "testserver", []),
    ("ws", "testserver", [""]),
    ("ws", "testserver", ["http://testserver", "http://testserver"]),  # two Origin headers
    ("ws", "testserver", ["http://testserver", "http://evil.com"]),
    ("ws", "testserver", ["testserver"]),
    ("ws", "testserver", ["//testserver"]),
    ("ws", "testserver", ["http://"]),
    ("ws", "testserver", ["http://testserver/"]),
    ("ws", "testserver", ["http://testserver/ws/notifications/"]),
    ("ws", "testserver", ["http://testserver?"]),
    ("ws", "testserver", ["http://testserver:"]),
    ("ws", "testserver", ["http://testserver:0"]),
    ("ws", "testserver", ["http://testserver:080"]),
    ("ws", "testserver", ["http://testserver:65616"]),
    ("ws", "testserver", ["http://testserver:abc"]),
    ("ws", "testserver", [" http://testserver"]),
    ("ws", "testserver", ["http://testserver\x00"]),
    ("ws", "testserver", ["http://test\xfferver"]),
    ("ws", "testserver", ["ws://testserver"]),
    ("ws", "testserver", ["file://"]),
    ("ws", "testserver", ["*"]),
    # a socket scheme that is neither ws nor wss
    ("ftp", "testserver", ["http://testserver"]),
]
TRUSTED = ["https://shop.example.com", "https://*.example.net", "http://127.0.0.1:9000"]
TRUSTED_ORIGINS = [
    "https://shop.example.com",
    "https://shop.example.com:443",
    "https://example.net",
    "https://eu.example.net",
    "https://a.b.example.net",
    "http://127.0.0.1:9000",
]
UNTRUSTED_ORIGINS = [
    "http://shop.example.com",
    "https://shop.example.com:8443",
    "https://a.shop.example.com",  # no wildcard on that entry
    "https://example.com",
    "http://eu.example.net",
    "https://evilexample.net",
    "https://example.net.evil.com",
    "https://eu.example.net:8443",
    "http://127.0.0.1:9001",
    "http://127.0.0.1",
]


def handshake(
    session_key: str, *, scheme: str, host: str, origins: list[str], path: str = "/ws/notifications/"
) -> WebsocketCommunicator:
    """A handshake as the ASGI server (or the trusted proxy's middleware) hands it to the application."""

    async def served_over(scope, receive, send):
        return await application({**scope, "scheme": scheme}, receive, send)

    headers = [(b"host", host.encode("latin1"))]
    headers += [(b"origin", origin.encode("latin1")) for origin in origins]
    headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return WebsocketCommunicator(served_over, path, headers=headers)


@pytest.fixture
async def customer_session():
    return await sync_to_async(session_key_for)(await sync_to_async(UserFactory)())


async def accepted(communicator: WebsocketCommunicator) -> bool:
    """Whether the handshake was accepted: the customer's hello came; refused is a close before accept (403)."""
    connected, _ = await communicator.connect()
    if connected:
        assert (await communicator.receive_json_from())["type"] == "hello"
        await communicator.disconnect()
    return connected


def row_ids(rows: list[tuple]) -> list[str]:
    return [f"{scheme} socket, Host {host!r}, Origin {origins!r}" for scheme, host, origins in rows]


@pytest.mark.parametrize(("scheme", "host", "origins"), SAME_SITE, ids=row_ids(SAME_SITE))
async def test_a_page_of_the_socket_s_own_site_may_open_it(customer_session, scheme, host, origins):
    assert await accepted(handshake(customer_session, scheme=scheme, host=host, origins=origins))


@pytest.mark.parametrize(("scheme", "host", "origins"), FOREIGN, ids=row_ids(FOREIGN))
async def test_any_other_origin_is_refused_at_the_handshake(customer_session, scheme, host, origins):
    assert not await accepted(handshake(customer_session, scheme=scheme, host=host, origins=origins))


@pytest.mark.parametrize("origin", TRUSTED_ORIGINS)
async def test_an_origin_csrf_trusts_may_open_it(customer_session, settings, origin):
    settings.CSRF_TRUSTED_ORIGINS = TRUSTED
    assert await accepted(handshake(customer_session, scheme="wss", host="testserver", origins=[origin]))


@pytest.mark.parametrize("origin", UNTRUSTED_ORIGINS)
async def test_an_origin_beside_the_trusted_ones_is_refused(customer_session, settings, origin):
    settings.CSRF_TRUSTED_ORIGINS = TRUSTED
    assert not await accepted(handshake(customer_session, scheme="wss", host="testserver", origins=[origin]))
