"""The web process: daphne, with its periodic sweeps over the connections done in slices.

    python -m shop.web [daphne's arguments, only to override a default]

Every start command (the Procfile, the image, compose, `make run`, the tests, the bench) runs this, with its
defaults from the settings, so from the environment: it listens on WEB_HOST:WEB_PORT, every endpoint with a
listen backlog of WEB_BACKLOG unless it names its own; a WebSocket lives up to WEBSOCKET_LIFETIME seconds and
its handshake may wait in line WEBSOCKET_CONNECT_TIMEOUT seconds; it serves shop.asgi:application. It refuses
daphne's --proxy-headers: forwarded headers are believed from TRUSTED_PROXIES only, by shop/proxy.py.

daphne walks every connection at once on two timers (reaping finished applications every second, timeouts and
pings every two), holding the event loop meanwhile; here each timer walks a slice every `SWEEP_STEP` seconds,
so every connection is visited as often but the loop is never held for long (docs/performance.md, "What the
profiles showed, and what was fixed").

At start-up it refuses other versions of the packages whose internals it uses (shop/internals.py) and lifts
its limit on open files as far as it may: every socket is one (shop/open_files.py).

It also hands every socket autobahn's options as class attributes instead of a copy each,
drains on shutdown (SIGTERM: a deploy): stops listening, closes every socket with 1012 spread over a few seconds,
lets HTTP requests in flight finish, all within `WEB_DRAIN_SECONDS` (shop/drain.py); then cancels every
application still running (daphne's own stops at the first connection without one), waiting for them a little;
and closes a connection whose request headers are not all in within `WEB_HEADER_TIMEOUT` seconds.
It measures what holds its event loop: the loop's lag and each garbage collection (shop/loop_lag.py, on /metrics).
"""

import asyncio
import concurrent.futures
import logging
import math
import os
import resource
import sys
import time
from types import FunctionType

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.cli import CommandLineInterface
from daphne.server import Server
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from twisted.internet import defer, reactor
from twisted.web import http

from shop.drain import CANCEL_WAIT, Drain
from shop.embedded_schedule import embedded_schedule_start
from shop.internals import internals_check
from shop.loop_lag import gc_pauses_observe, loop_lag_probe_start
from shop.open_files import open_files_limit_raise

logger = logging.getLogger("daphne.server")

APPLICATION = "shop.asgi:application"
SWEEP_STEP = 0.02  # seconds between slices: 50 a second, a few dozen connections each at 10,000


class Sweep:
    """Visits every key of a changing dict about once per `period`, spread evenly over the period.

    A round walks a snapshot of the keys; each call visits the share that is due by the clock,
    so a late call visits more and a round still lasts one period however late the calls are.
    Keys added during a round wait for the next one; keys gone since the snapshot are skipped.
    """

    def __init__(self, period: float):
        self.period = period
        self.round: list = []
        self.position = 0
        self.started = -math.inf

    def next_slice(self, connections: dict, now: float) -> list:
        """The connections due for a visit at `now`."""
        if self.position >= len(self.round) and now - self.started >= self.period:
            self.round, self.position, self.started = list(connections), 0, now
        # (Less a hair, so float error in the clock never makes a slice one too big.)
        due = math.ceil(len(self.round) * min(1.0, (now - self.started) / self.period) - 1e-9)
        batch = self.round[self.position : max(due, self.position + 1)]
        self.position += len(batch)
        if self.position >= len(self.round):
            self.round = []  # let closed connections go before the next round starts
        return [protocol for protocol in batch if protocol in connections]


class SlicedSweepServer(Server):
    """daphne's Server with `application_checker` and `timeout_checker` visiting a slice per call."""

    def __init__(self, *args, endpoints: list[str], **kwargs):
        super().__init__(*args, endpoints=[endpoint_with_backlog(e, settings.WEB_BACKLOG) for e in endpoints], **kwargs)
        self.application_sweep = Sweep(period=1.0)  # daphne: all of them every second
        self.timeout_sweep = Sweep(period=2.0)  # daphne: all of them every two seconds
        self.listening_ports: list = []  # daphne keeps only Deferreds whose result its listen_success swallowed

    def run(self):
        limit = open_files_limit_raise()
        shown = "any number" if limit == resource.RLIM_INFINITY else f"{limit:,}"
        logger.info("Open files: up to %s, one per socket", shown)
        reactor.callWhenRunning(self.share_protocol_options)
        reactor.callWhenRunning(self.enforce_header_deadline)
        reactor.callWhenRunning(embedded_schedule_start)  # embedded mode only: it has no beat
        reactor.callWhenRunning(loop_lag_probe_start)
        reactor.callWhenRunning(gc_pauses_observe)
        super().run()

    def enforce_header_deadline(self):
        """Build every HTTP connection (a WebSocket handshake starts as one) as a `HeaderDeadlineChannel`.

        daphne makes its HTTP factory in `run()` and starts listening with it before the reactor runs;
        connections are accepted only once it runs, after this. The factory builds what twisted's own
        does (its `_genericHTTPChannelProtocolFactory`, of the versions in shop/internals.py), around our channel.
        """
        header_timeout = settings.WEB_HEADER_TIMEOUT
        self.http_factory.protocol = lambda: http._GenericHTTPChannelProtocol(HeaderDeadlineChannel(header_timeout))

    def share_protocol_options(self):
        """Give every socket autobahn's options as class attributes instead of a copy each.

        autobahn copies its options from the factory into each protocol's `__dict__` unless the protocol
        already has them (docs/performance.md, "What the profiles showed, and what was fixed"). daphne sets
        them once, in `run()`, before the reactor starts (this runs then, before any connection), and never again.
        """
        factory = self.ws_factory
        options = {}
        for name in factory.protocol.CONFIG_ATTRS:
            value = getattr(factory, name)
            # A function option (perMessageCompressionAccept) must not become a method of the protocol.
            options[name] = staticmethod(value) if isinstance(value, FunctionType) else value
        # And nothing left to copy: autobahn also pformats the copied options for a debug line on every connection.
        options["CONFIG_ATTRS"] = ()
        factory.protocol = type(factory.protocol.__name__, (factory.protocol,), options)

    def timeout_checker(self):
        """Timeouts and pings, as daphne's, for the connections due now."""
        self._sweep(self.timeout_sweep, lambda protocol: protocol.check_timeouts(), self.timeout_checker)

    def application_checker(self):
        """Reap finished applications and kill slow-closing ones, as daphne's, for the connections due now."""
        self._sweep(self.application_sweep, self.check_application, self.application_checker)

    def _sweep(self, sweep: Sweep, visit, again) -> None:
        try:
            for protocol in sweep.next_slice(self.connections, reactor.seconds()):
                try:
                    visit(protocol)
                except Exception:
                    # One broken connection must not stop the sweep (twisted's log goes nowhere).
                    logger.exception("Checking connection %r failed", protocol)
        finally:
            # With no connection at all, wake up once a period rather than 50 times a second.
            reactor.callLater(SWEEP_STEP if self.connections else sweep.period, again)

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
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
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
            _release(protocol)

    def listen_success(self, port):
        """Keep the listening port, so a drain can stop listening; then daphne's (it logs the address)."""
        self.listening_ports.append(port)
        super().listen_success(port)

    async def handle_reply(self, protocol, message):
        """daphne's, less the frames for a socket already closing: the page resumes them by seq from the database.

        autobahn raises on a send after a close frame (the drain's, or the application's own), which the consumer
        would take for a bug of its own and log.
        """
        if message.get("type") == "websocket.send" and protocol.state in CLOSING_STATES:
            return
        await super().handle_reply(protocol, message)

    def kill_all_applications(self):
        """On shutdown (daphne's "before shutdown" trigger): drain, then cancel the applications still running."""
        drained = Drain(self, seconds=settings.WEB_DRAIN_SECONDS, clock=reactor).start()
        drained.addCallback(lambda _: self.cancel_applications())
        return drained

    def cancel_applications(self):
        """Cancel every running application, and wait up to CANCEL_WAIT for them to end.

        daphne's own reads `details["application_instance"]` of every connection and raises
        KeyError at the first one without (an upgraded HTTP request, or an application already
        reaped whose socket is still closing), leaving the rest uncancelled.
        """
        wait_for = []
        for details in self.connections.values():
            application_instance = details.get("application_instance")
            if application_instance is not None and not application_instance.done():
                application_instance.cancel()
                wait_for.append(application_instance)
        logger.info("Killed %i pending application instances", len(wait_for))
        wait_deferred = defer.Deferred.fromFuture(asyncio.gather(*wait_for))
        wait_deferred.addTimeout(CANCEL_WAIT, reactor)  # one stuck in its cleanup must not hold the exit
        wait_deferred.addErrback(lambda _: None)
        return wait_deferred


def _release(protocol) -> None:
    """Break the reference cycles a forgotten connection leaves, so reference counting frees it at once.

    Left to the garbage collector, they wait for a full collection, which WEB_GC_THRESHOLDS makes rare: under
    churn the process grew by about 12 KB per socket that came and went (docs/operations.md, "Soak").
    """
    # A WebSocket's upgrade request is never finished (daphne hands its connection over), so it stays in its HTTP
    # channel's requests, and that channel in it.
    channel = getattr(protocol, "channel", None)
    if channel is not None and protocol in getattr(channel, "requests", ()):
        channel.requests.remove(protocol)
    # autobahn resolves a socket's `is_closed` with the socket itself.
    if getattr(protocol, "is_closed", None) is not None:
        protocol.is_closed = None


class HeaderDeadlineChannel(http.HTTPChannel):
    """twisted's HTTP/1.1 channel, closing a connection whose request headers are not all in by a deadline.

    twisted's idle timeout (60 s) starts again with every byte, so a client sending its headers a byte at
    a time (Slowloris) held its connection, one of the process's open files, for as long as it liked. The
    deadline runs from the connection's start, or from the first byte of a kept-alive connection's next
    request, to the blank line that ends the headers: the time a complete WebSocket handshake then waits in
    line (daphne's connect timeout, notifications.middleware.ConnectGate) is not cut short, nor a slow
    response, nor an idle kept-alive connection (twisted's idle timeout still governs those).
    HTTP/1.1 only: the web process serves no TLS, so no HTTP/2, itself (a proxy in front terminates TLS).
    Written for Twisted 26.10 (the HTTPChannel hooks overridden here) under daphne 4.2.3.
    """

    def __init__(self, header_timeout: float):
        super().__init__()
        self.header_timeout = header_timeout
        self.header_deadline = None
        self.between_requests = False

    def connectionMade(self):
        super().connectionMade()
        self._start_header_deadline()

    def dataReceived(self, data):
        if self.between_requests and data:
            self.between_requests = False
            self._start_header_deadline()
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._stop_header_deadline()
        super().allHeadersReceived()

    def requestDone(self, request):
        # Set first: twisted replays any pipelined bytes it buffered through dataReceived.
        self.between_requests = True
        super().requestDone(request)

    def connectionLost(self, reason):
        self._stop_header_deadline()
        super().connectionLost(reason)

    def _start_header_deadline(self):
        if self.header_timeout and self.header_deadline is None:
            self.header_deadline = self.callLater(self.header_timeout, self._headers_too_slow)

    def _stop_header_deadline(self):
        if self.header_deadline is not None:
            if self.header_deadline.active():
                self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_slow(self):
        self.header_deadline = None
        logger.info("Closing connection from %s: request headers not complete within %ss",
                    self.transport.getPeer(), self.header_timeout)  # fmt: skip
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        self.timeoutConnection()  # twisted's: close, and abort if the client will not let go


CLOSING_STATES = (WebSocketProtocol.STATE_CLOSING, WebSocketProtocol.STATE_CLOSED)


# Endpoint types whose listening socket takes a backlog (an inherited `fd:` is already listening).
BACKLOG_ENDPOINTS = {"tcp", "tcp6", "ssl", "unix"}


def endpoint_with_backlog(endpoint: str, backlog: int) -> str:
    """`endpoint` (a twisted endpoint string) listening with `backlog`, unless it names a backlog of its own."""
    kind = endpoint.split(":", 1)[0]
    if kind not in BACKLOG_ENDPOINTS or ":backlog=" in endpoint:
        return endpoint
    return f"{endpoint}:backlog={backlog}"


class WebCommandLine(CommandLineInterface):
    """daphne's command line, with the shop's defaults from the settings; any argument still overrides one."""

    server_class = SlicedSweepServer

    def __init__(self):
        super().__init__()
        self.parser.set_defaults(
            websocket_timeout=settings.WEBSOCKET_LIFETIME,
            websocket_connect_timeout=settings.WEBSOCKET_CONNECT_TIMEOUT,
            # With JSON logs no plain access log on stdout: request_finished and socket lines say it (shop/logs.py).
            verbosity=0 if settings.LOG_FORMAT == "json" else 1,
        )
        # daphne requires the application argument; argparse keeps its arguments in `_actions`.
        application = next(action for action in self.parser._actions if action.dest == "application")
        application.nargs, application.required, application.default = "?", False, APPLICATION

    def run(self, args):
        given = self.parser.parse_args(args)
        if given.proxy_headers:
            self.parser.error("--proxy-headers would believe any client: set TRUSTED_PROXIES (shop/proxy.py) instead")
        if not (given.unix_socket or given.file_descriptor is not None or given.socket_strings):
            if given.host is None:
                args = [*args, "--bind", settings.WEB_HOST]
            if given.port is None:
                args = [*args, "--port", str(settings.WEB_PORT)]
        super().run(args)


def main(args: list[str]) -> None:
    """Start the web process with `args` (daphne's), on the pinned versions only."""
    try:
        internals_check()
    except ImproperlyConfigured as error:
        raise SystemExit(f"shop.web: {error}") from None
    WebCommandLine().run(args)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    main(sys.argv[1:])
