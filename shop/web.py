"""The web process: daphne, with its periodic sweeps over the connections done in slices.

    python -m shop.web [daphne's arguments]

daphne checks its connections on two timers: every second it reaps finished applications
(`application_checker`), every two seconds it enforces timeouts and sends a ping to each socket
that has been quiet for `--ping-interval` (`timeout_checker`). Each timer walks every connection
in one go, holding the event loop meanwhile. With 10,000 sockets those walks took 9-20 ms and
32-80 ms (about 1,000 pings in one batch), and every notification arriving during one waited:
that was the tail of the latency at 10,000 sockets (docs/performance.md). Here each timer walks
one slice of the connections every `SWEEP_STEP` seconds, so every connection is still visited
once a second and once every two seconds, but the loop is never held for more than a slice.

It also hands every socket autobahn's options as class attributes instead of a copy each.
Everything else is daphne's, arguments included: the Procfile, the image, compose, `make run`,
the tests and the bench all start the web process this way.
"""

import asyncio
import logging
import math
import time
from types import FunctionType

from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet import reactor

logger = logging.getLogger("daphne.server")

SWEEP_STEP = 0.02  # seconds between slices: 50 per second, a few dozen connections each at 10,000


class Sweep:
    """Visits every key of a changing dict once per `period`, a slice every SWEEP_STEP seconds."""

    def __init__(self, period: float):
        self.slices = max(1, round(period / SWEEP_STEP))
        self.round: list = []
        self.position = 0
        self.slice_size = 1

    def next_slice(self, connections: dict) -> list:
        """The next connections to visit; a new round over a snapshot starts when one ends."""
        if self.position >= len(self.round):
            self.round, self.position = list(connections), 0
            self.slice_size = max(1, math.ceil(len(self.round) / self.slices))
        batch = self.round[self.position : self.position + self.slice_size]
        self.position += self.slice_size
        # A connection that went away since the round began is not visited.
        return [protocol for protocol in batch if protocol in connections]


class SlicedSweepServer(Server):
    """daphne's Server with `application_checker` and `timeout_checker` visiting a slice per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.application_sweep = Sweep(period=1.0)  # daphne: all of them every second
        self.timeout_sweep = Sweep(period=2.0)  # daphne: all of them every two seconds

    def run(self):
        reactor.callWhenRunning(self.share_protocol_options)
        super().run()

    def share_protocol_options(self):
        """Give every socket autobahn's options as class attributes instead of a copy each.

        autobahn copies its ~40 options from the factory into each protocol's `__dict__`, unless
        the protocol already has them: 2 KB per idle socket. daphne sets them once, in `run()`,
        before the reactor starts (this runs then), and never changes them afterwards.
        """
        factory = self.ws_factory
        options = {}
        for name in factory.protocol.CONFIG_ATTRS:
            value = getattr(factory, name)
            # A function option (perMessageCompressionAccept) must not become a method of the protocol.
            options[name] = staticmethod(value) if isinstance(value, FunctionType) else value
        # And nothing left to copy: autobahn also pformats the list of copied options for a debug
        # line on every connection, logged or not (~0.3 ms, 6 % of a handshake's CPU).
        options["CONFIG_ATTRS"] = ()
        factory.protocol = type(factory.protocol.__name__, (factory.protocol,), options)

    def timeout_checker(self):
        """Timeouts and pings, as daphne's, for one slice of the connections."""
        for protocol in self.timeout_sweep.next_slice(self.connections):
            protocol.check_timeouts()
        reactor.callLater(SWEEP_STEP, self.timeout_checker)

    def application_checker(self):
        """Reap finished applications and kill slow-closing ones, as daphne's, for one slice."""
        for protocol in self.application_sweep.next_slice(self.connections):
            self.check_application(protocol)
        reactor.callLater(SWEEP_STEP, self.application_checker)

    def check_application(self, protocol):
        """daphne 4.2's `application_checker` body, for one connection."""
        details = self.connections[protocol]
        disconnected = details.get("disconnected", None)
        application_instance = details.get("application_instance", None)
        # The protocol disconnected and the application took too long to close up.
        if disconnected and time.time() - disconnected > self.application_close_timeout:
            if application_instance and not application_instance.done():
                logger.warning(
                    "Application instance %r for connection %s took too long to shut down and was killed.",
                    application_instance,
                    repr(protocol),
                )
                application_instance.cancel()
        # The application is done: log what it raised, and reap it.
        if application_instance and application_instance.done():
            try:
                exception = application_instance.exception()
            except asyncio.CancelledError:
                pass
            else:
                if exception:
                    if isinstance(exception, KeyboardInterrupt):
                        self.stop()  # the protocol asks the server to exit (as in daphne's tests)
                    else:
                        logger.error("Exception inside application: %s", exception, exc_info=exception)
                        if not disconnected:
                            protocol.handle_exception(exception)
            del details["application_instance"]
            application_instance = None
        # Both the protocol and the application are closed: forget the connection.
        if not application_instance and disconnected:
            del self.connections[protocol]


class WebCommandLine(CommandLineInterface):
    server_class = SlicedSweepServer


if __name__ == "__main__":
    WebCommandLine.entrypoint()
