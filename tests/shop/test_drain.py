"""shop/drain.py: on SIGTERM a web process stops listening, closes its sockets with 1012 spread out, then exits."""

import asyncio

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.task import Clock

from shop.drain import CLOSE_SERVICE_RESTART, Drain, closes_due


class Socket:
    """Stands in for daphne's WebSocketProtocol: records the close frame the drain sends."""

    application_type = "websocket"

    def __init__(self, state=WebSocketProtocol.STATE_OPEN, clock=None):
        self.state = state
        self.clock = clock
        self.close_frames = []
        self.closed_at = None

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        self.close_frames.append((code, isReply))
        self.closed_at = self.clock.seconds() if self.clock else None
        self.state = WebSocketProtocol.STATE_CLOSING


class Request:
    """Stands in for daphne's WebRequest (an HTTP request)."""


class Port:
    def __init__(self):
        self.listening = True

    def stopListening(self):
        self.listening = False


class Server:
    def __init__(self, connections):
        self.connections = connections
        self.listening_ports = [Port()]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def drain(server, clock, seconds=10.0):
    finished = []
    Drain(server, seconds=seconds, clock=clock).start().addCallback(lambda _: finished.append(clock.seconds()))
    return finished


def client_answers(server, socket):
    """The client's close frame came back: daphne marks the connection disconnected (its onClose)."""
    server.connections[socket]["disconnected"] = 1.0


def test_closes_are_due_one_by_one_evenly_over_the_spread():
    assert [closes_due(4, t, 2.0) for t in (0, 0.49, 0.5, 1.0, 1.5, 1.99, 2.0, 9)] == [1, 1, 2, 3, 4, 4, 4, 4]
    assert closes_due(0, 0, 2.0) == 0
    assert closes_due(5, 0, 0) == 5  # no spread: all at once


def test_a_drain_stops_listening_at_once(clock):
    server = Server({})
    drain(server, clock)
    assert [port.listening for port in server.listening_ports] == [False]


def test_every_socket_gets_1012_from_the_server_spread_over_the_first_half_of_the_drain(clock):
    sockets = [Socket(clock=clock) for _ in range(10)]
    server = Server({socket: {} for socket in sockets})
    drain(server, clock, seconds=10.0)
    for _ in range(80):
        clock.advance(0.125)  # a step a float holds exactly
    assert all(socket.close_frames == [(CLOSE_SERVICE_RESTART, False)] for socket in sockets)
    assert [socket.closed_at for socket in sockets] == pytest.approx([0.5 * i for i in range(10)])


def test_the_drain_ends_once_every_socket_closed_and_every_request_answered(clock, loop):
    socket, request = Socket(), Request()
    handling = loop.create_future()
    server = Server({socket: {}, request: {"application_instance": handling}})
    finished = drain(server, clock, seconds=10.0)
    client_answers(server, socket)
    clock.advance(1.0)
    assert finished == []  # the request is still in flight
    server.connections[request]["disconnected"] = 2.0  # answered
    clock.advance(1.0)
    assert finished == []  # and its application still running
    handling.set_result(None)
    clock.advance(0.1)
    assert finished and finished[0] < 2.2


def test_a_socket_still_in_its_handshake_is_closed_once_it_opens(clock):
    connecting = Socket(state=WebSocketProtocol.STATE_CONNECTING)
    server = Server({connecting: {}})
    drain(server, clock, seconds=10.0)
    clock.advance(1.0)
    assert connecting.close_frames == []
    connecting.state = WebSocketProtocol.STATE_OPEN  # the application accepted it
    clock.advance(0.1)
    assert connecting.close_frames == [(CLOSE_SERVICE_RESTART, False)]


def test_a_socket_opened_during_the_drain_is_closed_too(clock, loop):
    server = Server({Request(): {"application_instance": loop.create_future()}})  # a request keeps it draining
    drain(server, clock, seconds=10.0)
    late = Socket()
    server.connections[late] = {}  # its handshake had already begun when the drain stopped listening
    clock.advance(0.1)
    assert late.close_frames == [(CLOSE_SERVICE_RESTART, False)]


def test_the_drain_ends_at_its_deadline_whatever_is_still_open(clock, loop):
    stuck = Socket()
    server = Server({stuck: {}, Request(): {"application_instance": loop.create_future()}})
    finished = drain(server, clock, seconds=4.0)
    clock.advance(3.9)
    assert finished == []
    clock.advance(0.1)
    assert finished == [4.0]
    assert clock.getDelayedCalls() == []  # nothing left ticking


def test_a_socket_already_closed_is_not_sent_another_close(clock):
    gone = Socket()
    server = Server({gone: {"disconnected": 1.0}})
    finished = drain(server, clock)
    assert gone.close_frames == []
    assert finished == [0]
