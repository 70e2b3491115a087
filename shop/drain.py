"""A web process's graceful drain on SIGTERM (a deploy), before daphne's own shutdown drops what is left.

It stops listening (so a new process may take the port at once), closes every WebSocket with 1012 (Service
Restart), the closes spread evenly over the first `CLOSES_SHARE` of `WEB_DRAIN_SECONDS` so the pages do not all
reconnect at the same instant, lets the HTTP requests in flight finish and the applications end on their own,
and fires once all that is done or once `WEB_DRAIN_SECONDS` have passed, whichever is first (docs/reliability.md,
"Note on 3").

The close is the server's, sent by the protocol (autobahn's `sendCloseFrame`), not the application's: it needs
no channel-layer round trip and no consumer change, it works for any WebSocket application, and it can say 1012,
which autobahn's `sendClose` (what daphne runs for an application's close) refuses outside 1000 and 3000-4999.
The application then hears `websocket.disconnect` when the client answers, and cleans up as after any close.
"""

import logging
import math

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import defer

logger = logging.getLogger("daphne.server")

CLOSE_SERVICE_RESTART = 1012  # RFC 6455's registry: "the server is restarting"; static/js/connection.js comes back
CLOSES_SHARE = 0.5  # of the drain, over which the closes are spread; the rest lets the last ones finish
CANCEL_WAIT = 1.0  # seconds the applications still running after a drain get to end once cancelled (shop/web.py)
CHECK_STEP = 0.05  # seconds between checks once every socket has been told (those still connecting, what is left)


def closes_due(count: int, elapsed: float, spread: float) -> int:
    """How many of `count` sockets are due to have been closed `elapsed` seconds into closes spread over `spread`.

    The i-th (from 0) is due at i * spread / count: the first at once, the last a step before `spread` ends.
    """
    if spread <= 0 or count == 0:
        return count
    # (Plus a hair, so float error in the clock never holds a close back a step.)
    return min(count, math.floor(elapsed * count / spread + 1e-9) + 1)


def is_websocket(protocol) -> bool:
    return getattr(protocol, "application_type", None) == "websocket"  # daphne's WebSocketProtocol says so


class Drain:
    """One drain of `server` (a daphne Server): `start()` returns a Deferred that fires when it is over."""

    def __init__(self, server, *, seconds: float, clock):
        self.server = server
        self.seconds = seconds
        self.spread = seconds * CLOSES_SHARE
        self.clock = clock
        self.done = defer.Deferred()
        self.sockets: list = []
        self.position = 0
        self.told: set = set()
        self.next_call = None
        self.deadline_call = None

    def start(self) -> defer.Deferred:
        """Stop listening, then close the sockets open now over the spread, then wait for the rest."""
        self.started = self.clock.seconds()
        for port in self.server.listening_ports:
            port.stopListening()
        self.sockets = [protocol for protocol in self.server.connections if is_websocket(protocol)]
        requests = sum(1 for protocol, details in self.server.connections.items()
                       if not is_websocket(protocol) and not details.get("disconnected"))  # fmt: skip
        logger.info(
            "Draining: stopped listening; closing %d WebSocket(s) with %d over %.1fs, %d HTTP request(s) in flight, "
            "exiting within %.1fs",
            len(self.sockets), CLOSE_SERVICE_RESTART, self.spread, requests, self.seconds,
        )  # fmt: skip
        self.deadline_call = self.clock.callLater(self.seconds, self._finish, on_time=False)
        self._step()
        return self.done

    def _step(self) -> None:
        self.next_call = None
        elapsed = self.clock.seconds() - self.started
        due = closes_due(len(self.sockets), elapsed, self.spread)
        for protocol in self.sockets[self.position : due]:
            self._close(protocol)
        self.position = max(self.position, due)
        if self.position < len(self.sockets):
            next_due = self.started + self.spread * self.position / len(self.sockets)
            self.next_call = self.clock.callLater(max(next_due - self.clock.seconds(), 0), self._step)
            return
        # Every socket open at the start has been told: now those that finished their handshake since.
        for protocol in list(self.server.connections):
            if is_websocket(protocol) and protocol not in self.told:
                self._close(protocol)
        if self._drained():
            self._finish(on_time=True)
        else:
            self.next_call = self.clock.callLater(CHECK_STEP, self._step)

    def _close(self, protocol) -> None:
        details = self.server.connections.get(protocol)
        if details is None or details.get("disconnected"):
            self.told.add(protocol)
        elif protocol.state == WebSocketProtocol.STATE_OPEN:
            protocol.sendCloseFrame(code=CLOSE_SERVICE_RESTART, isReply=False)
            self.told.add(protocol)
        # Still in its handshake: told once the application accepts it (or dropped at the deadline).

    def _drained(self) -> bool:
        """Every connection closed (sockets) or answered (HTTP), and its application ended."""
        for details in self.server.connections.values():
            application = details.get("application_instance")
            if not details.get("disconnected") or (application is not None and not application.done()):
                return False
        return True

    def _finish(self, *, on_time: bool) -> None:
        if self.done.called:
            return
        for call in (self.next_call, self.deadline_call):
            if call is not None and call.active():
                call.cancel()
        left = sum(1 for details in self.server.connections.values() if not details.get("disconnected"))
        elapsed = self.clock.seconds() - self.started
        if on_time:
            logger.info("Drained in %.1fs", elapsed)
        else:
            logger.warning("Drain deadline (%.1fs) reached with %d connection(s) still open", elapsed, left)
        self.done.callback(None)
