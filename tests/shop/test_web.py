"""The web process (shop.web): daphne, sweeping its connections a slice at a time, as many as it may open."""

import asyncio
import logging
import re
from pathlib import Path

import pytest
from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from shop import web
from tests.live.servers import server_env, start_web_server


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
    server.kill_all_applications()  # daphne's raised KeyError at the first entry
    assert running.cancelled() and not finished.cancelled()


def test_the_web_command_line_runs_the_sliced_sweep_server():
    assert web.WebCommandLine.server_class is web.SlicedSweepServer


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
