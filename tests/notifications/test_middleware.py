"""ConnectGate: handshakes beyond the limit wait in line; one given up while waiting costs nothing. SocketAuth."""

import asyncio
from collections import defaultdict

import pytest
from asgiref.testing import ApplicationCommunicator

from notifications.middleware import ConnectGate, SocketAuth, SocketMetrics
from shop.asgi import application
from tests.notifications.test_consumer import socket
from tests.notifications.test_consumer_tickets import browser_of, cookie_of, make_user, page_ticket

ACCEPT = {"type": "websocket.accept"}
FIRST_FRAME = {"type": "websocket.send", "text": "{}"}
REJECT = {"type": "websocket.close", "code": 1000}


class ScriptedApp:
    """An application whose handshakes do what the test tells them, one step at a time (by path)."""

    def __init__(self):
        self.started: list[str] = []  # paths, in the order the gate let them through
        self.received: dict[str, list[str]] = {}  # path -> types of the messages it read
        self.steps: dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
        self.gate = ConnectGate(self)

    async def __call__(self, scope, receive, send):
        path = scope["path"]
        self.started.append(path)
        self.received[path] = [(await receive())["type"]]
        while (step := await self.steps[path].get()) != "return":
            if step == "receive":
                self.received[path].append((await receive())["type"])
            else:
                await send(step)

    def tell(self, path: str, *steps) -> None:
        for step in steps:
            self.steps[path].put_nowait(step)

    async def tab(self, path: str) -> ApplicationCommunicator:
        """A page opening a socket to `path`, through the gate."""
        communicator = ApplicationCommunicator(self.gate, {"type": "websocket", "path": path})
        await communicator.send_input({"type": "websocket.connect"})
        return communicator

    async def finish(self, *tabs: ApplicationCommunicator) -> None:
        for communicator in tabs:
            self.tell(communicator.scope["path"], "return")
            await communicator.wait(timeout=1)


@pytest.fixture
def app(settings):
    settings.NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT = 1
    return ScriptedApp()


async def settle() -> None:
    """Let every task that can run, run (all of this is one event loop, no I/O)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_handshake_beyond_the_limit_waits_until_the_one_at_work_sends_its_first_frame(app):
    a = await app.tab("/a")
    b = await app.tab("/b")
    await settle()
    assert app.started == ["/a"]

    app.tell("/a", ACCEPT)
    assert await a.receive_output() == ACCEPT
    await settle()
    assert app.started == ["/a"]  # accepted is not yet set up: the backlog and hello come after

    app.tell("/a", FIRST_FRAME)
    assert await a.receive_output() == FIRST_FRAME
    await settle()
    assert app.started == ["/a", "/b"]
    await app.finish(a, b)


async def test_a_rejected_handshake_frees_its_turn(app):
    a = await app.tab("/a")
    b = await app.tab("/b")
    app.tell("/a", REJECT, "return")
    assert await a.receive_output() == REJECT
    await settle()
    assert app.started == ["/a", "/b"]
    await app.finish(b)


async def test_a_handshake_given_up_while_waiting_never_reaches_the_application(app):
    a = await app.tab("/a")
    b = await app.tab("/b")
    await settle()
    # The client left, or daphne refused it for waiting longer than its connect timeout.
    await b.send_input({"type": "websocket.disconnect", "code": 1006})
    await b.wait(timeout=1)

    app.tell("/a", ACCEPT, FIRST_FRAME)
    c = await app.tab("/c")
    await settle()
    assert app.started == ["/a", "/c"]
    await app.finish(a, c)


async def test_a_disconnect_that_arrives_during_set_up_reaches_the_application_after_the_connect(app):
    a = await app.tab("/a")
    await settle()
    await a.send_input({"type": "websocket.disconnect", "code": 1006})
    app.tell("/a", "receive", "return")
    await a.wait(timeout=1)
    assert app.received["/a"] == ["websocket.connect", "websocket.disconnect"]


async def test_the_limit_holds_for_the_shops_own_stack(app):
    """The gate sits in shop/asgi.py's WebSocket stack (and an unauthenticated socket still gets its close)."""
    communicator = socket()
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_output())["code"] == 4401
    metered = application.app.application_mapping["websocket"]  # inside shop.proxy.TrustedProxyMiddleware
    assert isinstance(metered, SocketMetrics)
    assert isinstance(metered.app.application, ConnectGate)  # inside the origin check


async def test_a_handshake_cancelled_while_waiting_gives_its_place_back_and_no_more(app):
    a = await app.tab("/a")
    b = await app.tab("/b")
    await settle()
    b.future.cancel()  # daphne kills an application that outlives its connection
    await settle()

    app.tell("/a", ACCEPT, FIRST_FRAME)
    c = await app.tab("/c")
    d = await app.tab("/d")
    await settle()
    assert app.started == ["/a", "/c"]  # still one at a time
    await app.finish(a, c)
    await settle()
    assert app.started == ["/a", "/c", "/d"]
    await app.finish(d)


# --- SocketAuth ----------------------------------------------------------------------------------


class ScopeRecorder:
    """An application that records the scope the middleware handed it, and ends the handshake."""

    def __init__(self):
        self.scope = None

    async def __call__(self, scope, receive, send):
        self.scope = scope


async def scope_seen_by_the_consumer(*, cookie: str | None, query: str) -> dict:
    recorder = ScopeRecorder()
    headers = [(b"host", b"testserver")] + ([(b"cookie", f"sessionid={cookie}".encode())] if cookie else [])
    scope = {"type": "websocket", "path": "/ws/notifications/", "query_string": query.encode(), "headers": headers}
    await SocketAuth(recorder)(scope, None, None)
    return recorder.scope


@pytest.mark.django_db(transaction=True)
async def test_socket_auth_passes_the_pages_ticket_on_without_reading_the_user():
    customer = await make_user()
    browser = await browser_of(customer)
    scope = await scope_seen_by_the_consumer(cookie=cookie_of(browser), query=f"ticket={await page_ticket(browser)}")
    assert scope["ticket"].user_id == customer.pk
    assert "user" not in scope  # the consumer's one read checks it


@pytest.mark.django_db(transaction=True)
async def test_socket_auth_reads_the_cookies_user_when_the_ticket_is_another_sessions():
    alice, bob = await make_user(), await make_user()
    alices_ticket = await page_ticket(await browser_of(alice))
    scope = await scope_seen_by_the_consumer(cookie=cookie_of(await browser_of(bob)), query=f"ticket={alices_ticket}")
    assert "ticket" not in scope
    assert scope["user"].pk == bob.pk
