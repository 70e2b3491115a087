"""The web process (shop.web): daphne, sweeping its connections a slice at a time, as many as it may open."""

import asyncio
import base64
import contextlib
import logging
import os
import re
import socket
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

import psycopg
import pytest
from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.ws_protocol import WebSocketFactory
from django.test import Client
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

import bench.floor
import shop.asgi
from shop import web
from tests.conftest import requires_postgres
from tests.live.servers import live_db, server_env, servers_database_url, start_web_server


class Connection:
    """Stands in for a daphne protocol in the server's connection table."""

    def __init__(self):
        self.timeout_checks = 0
        self.exceptions = []

    def check_timeouts(self):
        self.timeout_checks += 1

    def handle_exception(self, exception):
        self.exceptions.append(exception)


@pytest.fixture
def clock(monkeypatch):
    """twisted's own test clock in place of the reactor, so callLater runs when the test advances it."""
    clock = Clock()
    monkeypatch.setattr(web, "reactor", clock)
    return clock


@pytest.fixture
def server():
    server = web.SlicedSweepServer(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}  # daphne's run() makes it
    return server


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def sweep_calls(sweep: web.Sweep, connections: dict, times: list[float]) -> list[list]:
    return [sweep.next_slice(connections, now) for now in times]


def test_a_sweep_visits_every_connection_once_per_period_in_even_slices():
    connections = {Connection(): {} for _ in range(1000)}
    steps = round(2.0 / web.SWEEP_STEP)
    slices = sweep_calls(web.Sweep(period=2.0), connections, [i * web.SWEEP_STEP for i in range(steps + 1)])
    visited = [connection for batch in slices for connection in batch]
    assert sorted(map(id, visited)) == sorted(map(id, connections))
    assert max(len(batch) for batch in slices) == 10  # 1,000 over 100 steps


def test_a_late_sweep_visits_more_at_once_and_still_ends_its_round_on_time():
    connections = {Connection(): {} for _ in range(1000)}
    slices = sweep_calls(web.Sweep(period=2.0), connections, [0.0, 0.5, 1.9, 2.0])
    assert [len(batch) for batch in slices] == [1, 249, 700, 50]


def test_a_small_sweep_waits_for_the_period_before_visiting_again():
    connections = {Connection(): {} for _ in range(7)}
    sweep = web.Sweep(period=1.0)
    first_round = sweep_calls(sweep, connections, [i * web.SWEEP_STEP for i in range(50)])
    assert sum(len(batch) for batch in first_round) == 7
    assert len(sweep.next_slice(connections, 1.0)) == 1  # the next round starts a period after the first


def test_a_sweep_skips_connections_gone_since_its_round_began_and_finds_new_ones_next_round():
    first, gone = Connection(), Connection()
    connections = {first: {}, gone: {}}
    sweep = web.Sweep(period=1.0)
    assert sweep.next_slice(connections, 0.0) == [first]
    del connections[gone]
    newcomer = Connection()
    connections[newcomer] = {}
    assert sweep.next_slice(connections, 0.5) == []
    assert sweep.next_slice(connections, 1.0) + sweep.next_slice(connections, 1.5) == [first, newcomer]


def test_timeouts_and_pings_reach_every_connection_every_two_seconds_a_slice_at_a_time(server, clock):
    connections = [Connection() for _ in range(500)]
    server.connections = {connection: {} for connection in connections}
    server.timeout_checker()
    checks_per_step = []
    for _ in range(round(2.0 / web.SWEEP_STEP)):
        before = sum(connection.timeout_checks for connection in connections)
        clock.advance(web.SWEEP_STEP)
        checks_per_step.append(sum(connection.timeout_checks for connection in connections) - before)
    assert all(connection.timeout_checks == 1 for connection in connections)
    assert max(checks_per_step) == 5  # 500 over 100 steps, where daphne checked all 500 at once


def test_with_no_connections_the_sweeps_wake_once_a_period(server, clock):
    server.timeout_checker()
    server.application_checker()
    assert sorted(call.getTime() for call in clock.getDelayedCalls()) == [1.0, 2.0]


def test_a_connection_whose_check_fails_is_logged_and_the_sweep_goes_on(server, clock, caplog):
    class Broken(Connection):
        def check_timeouts(self):
            raise RuntimeError("broken")

    broken, healthy = Broken(), Connection()
    server.connections = {broken: {}, healthy: {}}
    server.timeout_checker()
    clock.advance(2.0)
    assert healthy.timeout_checks == 1
    assert "Checking connection" in caplog.text and "broken" in caplog.text
    assert clock.getDelayedCalls()  # still scheduled


def test_finished_applications_are_reaped_and_closed_connections_forgotten(server, clock, loop):
    finished, running = loop.create_future(), loop.create_future()
    finished.set_result(None)
    closed_and_done, open_and_running = Connection(), Connection()
    server.connections = {
        closed_and_done: {"application_instance": finished, "disconnected": 1.0},
        open_and_running: {"application_instance": running},
    }
    server.application_checker()
    clock.advance(web.SWEEP_STEP)
    assert closed_and_done not in server.connections
    assert server.connections[open_and_running] == {"application_instance": running}


def test_an_application_that_raised_is_logged_and_its_open_connection_told(server, clock, loop, caplog):
    failed = loop.create_future()
    failed.set_exception(RuntimeError("boom"))
    connection = Connection()
    server.connections = {connection: {"application_instance": failed}}
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        server.application_checker()
    assert [str(error) for error in connection.exceptions] == ["boom"]
    assert "Exception inside application: boom" in caplog.text
    assert server.connections[connection] == {}  # reaped; the connection stays until it closes


def test_an_application_slow_to_close_after_its_client_left_is_cancelled(server, clock, loop):
    lingering = loop.create_future()
    server.connections = {Connection(): {"application_instance": lingering, "disconnected": 1.0}}  # long ago
    server.application_checker()
    assert lingering.cancelled()


def test_shutdown_cancels_every_running_application_even_next_to_an_upgraded_request(server, loop):
    running, finished = loop.create_future(), loop.create_future()
    finished.set_result(None)
    server.connections = {
        Connection(): {"disconnected": 1.0},  # the HTTP request a socket was upgraded from
        Connection(): {"application_instance": running},
        Connection(): {"application_instance": finished},
    }
    server.cancel_applications()  # daphne's raised KeyError at the first entry
    assert running.cancelled() and not finished.cancelled()


class ClosingSocket:
    """A socket whose close frame has gone (the drain's or its application's): autobahn would raise on a send."""

    state = WebSocketServerProtocol.STATE_CLOSING

    def __init__(self):
        self.replies = []

    def handle_reply(self, message):
        self.replies.append(message)


def test_a_frame_for_a_socket_already_closing_is_dropped_and_its_close_still_passes(server, loop):
    socket = ClosingSocket()
    server.connections = {socket: {}}
    loop.run_until_complete(server.handle_reply(socket, {"type": "websocket.send", "text": "{}"}))
    loop.run_until_complete(server.handle_reply(socket, {"type": "websocket.close", "code": 4001}))
    assert socket.replies == [{"type": "websocket.close", "code": 4001}]  # autobahn ignores it when closing


def test_shutdown_drains_first_and_cancels_what_is_still_running_at_the_drain_deadline(server, clock, loop, settings):
    settings.WEB_DRAIN_SECONDS = 4.0
    stuck = loop.create_future()
    server.connections = {Connection(): {"application_instance": stuck}}  # a request that never answers
    shutdown = server.kill_all_applications()
    clock.advance(3.9)
    assert not stuck.cancelled()  # given the drain's time to finish
    clock.advance(0.1)
    assert stuck.cancelled()
    clock.advance(web.CANCEL_WAIT)
    assert shutdown.called  # the reactor goes on stopping, whatever the cancelled application does


def test_the_web_command_line_runs_the_sliced_sweep_server():
    assert web.WebCommandLine.server_class is web.SlicedSweepServer


# --- The command line: the settings' defaults, any argument overriding one ----------------------------------


class BuiltServer(web.SlicedSweepServer):
    """The server the command line builds, kept instead of run."""

    def run(self):
        pass


def server_built_from(args: list[str], monkeypatch) -> web.SlicedSweepServer:
    monkeypatch.setattr(sys, "path", list(sys.path))  # daphne's run() puts "." in front
    command_line = web.WebCommandLine()
    command_line.server_class = BuiltServer
    command_line.run(args)
    return command_line.server


@pytest.fixture
def web_settings(settings):
    settings.WEB_HOST, settings.WEB_PORT, settings.WEB_BACKLOG = "127.0.0.9", 8123, 2048
    settings.WEBSOCKET_LIFETIME, settings.WEBSOCKET_CONNECT_TIMEOUT = 3600, 30
    return settings


def test_with_no_arguments_the_web_process_serves_the_shop_as_the_settings_say(web_settings, monkeypatch):
    server = server_built_from([], monkeypatch)
    assert server.endpoints == ["tcp:port=8123:interface=127.0.0.9:backlog=2048"]
    assert server.websocket_timeout == 3600
    assert server.websocket_connect_timeout == server.websocket_handshake_timeout == 30
    assert server.application is shop.asgi.application
    # Forwarded headers are shop/proxy.py's to believe, from TRUSTED_PROXIES only.
    assert server.proxy_forwarded_address_header is server.proxy_forwarded_proto_header is None
    assert server.verbosity == 1


def test_arguments_override_the_settings_one_at_a_time(web_settings, monkeypatch):
    """What the bench and the tests pass: a port, no access log, another application, a shorter connect timeout."""
    server = server_built_from(["--port", "0", "-v", "0", "--websocket_connect_timeout", "5", "bench.floor:bare"],
                               monkeypatch)  # fmt: skip
    assert server.endpoints == ["tcp:port=0:interface=127.0.0.9:backlog=2048"]
    assert server.verbosity == 0 and server.websocket_connect_timeout == 5 and server.websocket_timeout == 3600
    assert server.application is bench.floor.bare
    ipv6 = server_built_from(["--bind", "::1"], monkeypatch)
    assert ipv6.endpoints == [r"tcp:port=8123:interface=\:\:1:backlog=2048"]


def test_an_endpoint_given_replaces_the_settings_address_and_keeps_a_backlog_of_its_own(web_settings, monkeypatch):
    given = ["-e", "tcp:port=0:interface=127.0.0.1:backlog=64", "-e", "unix:address=/tmp/shop.sock"]
    assert sorted(server_built_from(given, monkeypatch).endpoints) == [
        "tcp:port=0:interface=127.0.0.1:backlog=64",
        "unix:address=/tmp/shop.sock:backlog=2048",
    ]
    assert server_built_from(["--fd", "3"], monkeypatch).endpoints == ["fd:fileno=3"]  # already listening


def test_the_web_process_refuses_to_believe_forwarded_headers_from_any_client(web_settings, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        server_built_from(["--proxy-headers"], monkeypatch)
    assert "TRUSTED_PROXIES (shop/proxy.py)" in capsys.readouterr().err


def test_sockets_share_autobahns_options_instead_of_a_copy_each(server):
    # As daphne's run() sets up its factory before the reactor starts.
    server.ws_factory = WebSocketFactory(server, server="Daphne")
    server.ws_factory.setProtocolOptions(autoPingTimeout=30, allowNullOrigin=True, maxMessagePayloadSize=4096)
    server.share_protocol_options()
    protocol = server.ws_factory.buildProtocol(("127.0.0.1", 40000))
    protocol.makeConnection(StringTransport())  # autobahn's connectionMade: where it would copy them
    assert not set(WebSocketServerProtocol.CONFIG_ATTRS) & set(vars(protocol))
    assert protocol.maxMessagePayloadSize == 4096 and protocol.autoPingTimeout == 30
    assert protocol.perMessageCompressionAccept([]) is None  # a function option stays a plain function
    assert protocol.CONFIG_ATTRS == ()  # nothing left for autobahn to copy (and pformat) per connection


def test_a_web_process_started_under_a_low_soft_limit_on_open_files_lifts_it_to_the_hard_one_and_says_so(
    django_db_setup, e2e_workdir, e2e_static_root
):
    """Each socket is a file: under a soft limit of 1,024 (systemd's, Docker's) the 1,025th customer is turned away."""
    server = start_web_server(
        "web-low-soft-limit", server_env(), e2e_workdir, e2e_static_root, launcher=("prlimit", "--nofile=256:")
    )
    try:
        said = int(server.process.wait_for_log(r"Open files: up to ([\d,]+), one per socket").group(1).replace(",", ""))
        limits = Path(f"/proc/{server.pid}/limits").read_text()  # prlimit execs the server: one pid
    finally:
        server.process.stop()
    soft, hard = map(int, re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.MULTILINE).groups())
    assert hard > 256
    assert soft == hard == said


# --- The deadline for a request's headers (a real web process) ---------------------------------------------

HEADER_TIMEOUT = 1.0  # the process's WEB_HEADER_TIMEOUT here; daphne's connect timeout stays 30 s
CLOSE_DEADLINE = 10.0  # how long a test waits for the server to close: well under the 30 s connect timeout
HALF_A_REQUEST = b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"


@pytest.fixture(scope="module")
def header_deadline_server(django_db_setup, tmp_path_factory, e2e_static_root):
    """One web process, embedded mode, with a 1 s header deadline and one handshake at work at a time.

    A folder (so a log) of its own each time: pytest-django runs transactional tests after the others, so the
    module's tests may start it twice, and the port is read from the log.
    """
    env = server_env(REDIS_URL="", WEB_HEADER_TIMEOUT=str(HEADER_TIMEOUT), NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT="1")
    workdir = tmp_path_factory.mktemp("web-header-deadline")
    server = start_web_server("web-header-deadline", env, workdir, e2e_static_root)
    yield server
    server.process.stop()


def connect_raw(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=CLOSE_DEADLINE)


def read_until_closed(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open at CLOSE_DEADLINE."""
    received = b""
    end = time.monotonic() + CLOSE_DEADLINE
    while time.monotonic() < end:
        client.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = client.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server kept the connection open for {CLOSE_DEADLINE}s (got {received!r})")


def header_deadline_passed(server) -> None:
    """Returns once a connection opened now has been cut by the header deadline: that much time has gone by."""
    with connect_raw(server) as probe:
        probe.sendall(HALF_A_REQUEST)
        assert read_until_closed(probe).startswith(b"HTTP/1.1 408 ")


def test_a_client_that_sends_half_a_request_and_stops_gets_408_and_is_closed_at_the_header_deadline(
    header_deadline_server,
):
    with connect_raw(header_deadline_server) as client:
        client.sendall(HALF_A_REQUEST)
        answer = read_until_closed(client)
    assert answer == b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    assert "request headers not complete within 1.0s" in header_deadline_server.process.log_text()


def test_a_client_that_connects_and_sends_nothing_is_closed_at_the_header_deadline(header_deadline_server):
    with connect_raw(header_deadline_server) as client:
        assert read_until_closed(client).startswith(b"HTTP/1.1 408 ")


def test_a_client_dribbling_its_headers_is_closed_though_it_never_goes_quiet_for_long(header_deadline_server):
    """Slowloris: a byte every tenth of a second restarts twisted's 60 s idle timeout each time, never this deadline."""
    request = HALF_A_REQUEST + b"X-Padding: " + b"a" * 2000 + b"\r\n\r\n"
    sent = 0
    with connect_raw(header_deadline_server) as client:
        client.settimeout(0.1)  # the pace of the attack, and the wait for the server's answer between bytes
        answer = b""
        while sent < len(request):
            try:
                client.sendall(request[sent : sent + 1])
            except OSError:
                break  # already closed
            sent += 1
            try:
                answer = client.recv(4096)
            except TimeoutError:
                continue
            break  # an answer, or the close
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sent < len(request) / 10  # cut off in the first tenth: about a second's worth of bytes


@live_db
@requires_postgres()
def test_a_complete_websocket_handshake_waiting_in_line_past_the_header_deadline_is_served(
    header_deadline_server, live_customer
):
    """The deadline ends with the headers: the time in line (daphne's connect timeout, 30 s) is not cut short."""
    session = Client()
    session.force_login(live_customer)
    handshake = websocket_handshake(header_deadline_server, session.cookies["sessionid"].value)
    with held_session_table() as holder, connect_raw(header_deadline_server) as at_work:
        at_work.sendall(handshake)  # takes the one turn, then waits for the session table
        holder.wait_for_a_waiter()
        with connect_raw(header_deadline_server) as in_line:
            in_line.sendall(handshake)  # complete, and waits in line behind `at_work`
            header_deadline_passed(header_deadline_server)
            in_line.setblocking(False)
            with pytest.raises(BlockingIOError):  # still open, nothing sent yet: waiting its turn
                in_line.recv(1)
            in_line.setblocking(True)
            holder.release()
            for client in (at_work, in_line):
                answer = read_until(client, b'"type":"hello"')
                assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


def test_a_kept_alive_connection_idle_past_the_header_deadline_still_serves_its_next_request(header_deadline_server):
    connection = HTTPConnection("127.0.0.1", header_deadline_server.port, timeout=CLOSE_DEADLINE)
    try:
        connection.request("GET", "/accounts/login/")
        first = connection.getresponse()
        assert first.status == 200 and b"Log in" in first.read()
        kept = connection.sock
        header_deadline_passed(header_deadline_server)  # idle meanwhile: twisted's idle timeout governs that
        connection.request("GET", "/")
        second = connection.getresponse()
        assert second.status == 200 and second.read()
        assert connection.sock is kept  # the same connection, not a new one
    finally:
        connection.close()


def websocket_handshake(server, session_id: str) -> bytes:
    return (
        f"GET /ws/notifications/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: {server.origin}\r\nCookie: sessionid={session_id}\r\n\r\n"
    ).encode()


def read_until(client: socket.socket, expected: bytes) -> bytes:
    """What the server sends, up to and including `expected`; fails at CLOSE_DEADLINE or if it closes first."""
    received = b""
    end = time.monotonic() + CLOSE_DEADLINE
    while expected not in received:
        client.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = client.recv(4096)
        except TimeoutError:
            pytest.fail(f"no {expected!r} within {CLOSE_DEADLINE}s (got {received!r})")
        assert chunk, f"closed before {expected!r} (got {received!r})"
        received += chunk
    return received


class SessionTableHolder:
    """A transaction of the test's own holding an exclusive lock on the session table."""

    def __init__(self, connection):
        self.connection = connection

    def wait_for_a_waiter(self) -> None:
        """Returns once another connection (a handshake reading its session) waits for the lock."""
        end = time.monotonic() + CLOSE_DEADLINE
        while time.monotonic() < end:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'django_session'::regclass AND NOT granted"
                )
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.05)
        pytest.fail("no handshake waited for the session table")

    def release(self) -> None:
        self.connection.rollback()


@contextlib.contextmanager
def held_session_table():
    with psycopg.connect(servers_database_url()) as connection:
        connection.execute("LOCK TABLE django_session IN ACCESS EXCLUSIVE MODE")
        try:
            yield SessionTableHolder(connection)
        finally:
            connection.rollback()


def test_the_web_process_exports_its_event_loops_lag_and_its_garbage_collections(header_deadline_server):
    """shop/loop_lag.py runs in every web process from its start: its histograms are on the process's /metrics."""
    end = time.monotonic() + CLOSE_DEADLINE
    while True:
        connection = HTTPConnection("127.0.0.1", header_deadline_server.port, timeout=CLOSE_DEADLINE)
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        assert response.status == 200
        found = re.search(r"^shop_event_loop_lag_seconds_count (\S+)$", body, re.MULTILINE)
        if found and float(found.group(1)) > 0:
            assert re.search(r'^shop_gc_pause_seconds_count\{generation="2"\} ', body, re.MULTILINE)
            return
        assert time.monotonic() < end, "no lag observed on the web process's /metrics"
        time.sleep(0.1)  # polling the live process, with a deadline
