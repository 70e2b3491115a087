"""Per-user limits across web processes: two daphnes sharing Redis count one user's sockets and messages together
(docs/reliability.md, probe row 4); in embedded mode one process counts them alone."""

import pytest

from tests.conftest import requires_postgres, requires_redis
from tests.live.clients import closing_code, receive_frame, receive_hello
from tests.live.servers import live_db, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

CLOSE_REPLACED = 4409
SOCKETS_PER_USER = 3
USER_RATE_LIMIT = "8/minute"  # a minute's window: the test cannot straddle it


@pytest.fixture(scope="module")
def two_web_processes(_full_stack, e2e_workdir, e2e_static_root):
    """Two daphnes on the stack's Redis and database, with small per-user limits."""
    env = {
        **_full_stack.env,
        "NOTIFICATION_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
        "NOTIFICATION_USER_RATE_LIMIT": USER_RATE_LIMIT,
    }
    servers = []
    try:
        for name in ("daphne-limits-a", "daphne-limits-b"):
            servers.append(start_web_server(name, env, e2e_workdir, e2e_static_root))
        yield servers
    finally:
        for server in servers:
            server.process.stop()


async def ping(socket) -> dict:
    await socket.send('{"type": "ping"}')
    return await receive_frame(socket)


@requires_redis()
async def test_the_socket_cap_holds_across_web_processes(two_web_processes, open_browser, open_socket, customer):
    first_server, second_server = two_web_processes
    browser = await (await open_browser(first_server)).login(customer.username)
    sockets = [await open_socket(server, browser) for server in (first_server, first_server, second_server)]
    for socket in sockets:
        await receive_hello(socket)

    newest = await open_socket(second_server, browser)
    await receive_hello(newest)

    assert await closing_code(sockets[0]) == CLOSE_REPLACED  # the oldest, on the other process
    for socket in [*sockets[1:], newest]:
        assert await ping(socket) == {"type": "pong"}


@requires_redis()
async def test_the_message_rate_limit_holds_across_web_processes(
    two_web_processes, open_browser, open_socket, customer
):
    first_server, second_server = two_web_processes
    browser = await (await open_browser(first_server)).login(customer.username)
    first, second = await open_socket(first_server, browser), await open_socket(second_server, browser)
    for socket in (first, second):
        await receive_hello(socket)

    replies = [(await ping(socket))["type"] for socket in [first] * 5 + [second] * 4]

    assert replies == ["pong"] * 8 + ["error"]


async def test_in_embedded_mode_the_cap_is_kept_by_the_one_process(
    embedded_server, open_browser, open_socket, customer, settings
):
    browser = await (await open_browser(embedded_server)).login(customer.username)
    sockets = []
    for _ in range(settings.NOTIFICATION_SOCKETS_PER_USER + 1):  # the server runs with the default cap
        sockets.append(await open_socket(embedded_server, browser))
        await receive_hello(sockets[-1])

    assert await closing_code(sockets[0]) == CLOSE_REPLACED
    assert await ping(sockets[-1]) == {"type": "pong"}
