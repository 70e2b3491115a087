"""ASGI middleware for the WebSocket stack (wired in shop/asgi.py)."""

import asyncio
import weakref
from importlib import import_module
from urllib.parse import parse_qs

from channels.auth import get_user
from django.conf import settings
from django.http import parse_cookie

from notifications import metrics
from notifications.tickets import socket_ticket_read


class ConnectGate:
    """At most NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT handshakes at work per process; the rest wait in line.

    Why: setting a socket up costs a few milliseconds of this process's CPU (session, user,
    groups, backlog). When thousands of pages reconnect at once (a web process died, a
    deploy), every handshake started at once would share the CPU and each would finish
    only after all of them had: past daphne's connect timeout, so all are refused, they
    all retry, and no one ever gets in (docs/reliability.md, Faults, 7). In line, first come
    first served, the early ones finish at full speed; the ones daphne gives up on while
    waiting are refused (the page backs off and retries) and leave the line without having
    cost a database query.

    A handshake is at work from the moment it leaves the line until the application
    closes the socket or sends its first frame (for the NotificationConsumer: `hello`,
    after the backlog query).
    """

    def __init__(self, app):
        self.app = app
        # One line per event loop (tests run many loops in one process).
        self._lines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _line(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = asyncio.Semaphore(settings.NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT)
        return line

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        line = self._line()
        connect = await receive()  # websocket.connect
        # Before the handshake is accepted the only other message there can be is websocket.disconnect:
        # the client left, or daphne refused it for waiting longer than its connect timeout.
        next_message = asyncio.ensure_future(receive())
        turn = asyncio.ensure_future(line.acquire())
        try:
            await asyncio.wait({next_message, turn}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            next_message.cancel()
            _leave_line(line, turn)
            raise
        if next_message.done():
            _leave_line(line, turn)
            return  # gone while waiting: nothing to set up
        # This frame lives as long as the socket (hours, at thousands per process): it keeps only `gated`.
        gated = _GatedSocket(line, [connect, next_message], receive, send)
        del connect, next_message, turn
        try:
            await self.app(scope, gated.receive, gated.send)
        finally:
            gated.close()


class _GatedSocket:
    """The application's receive and send while its handshake holds a turn, which ends at the first frame or close."""

    __slots__ = ("line", "unread", "_receive", "_send")

    def __init__(self, line: asyncio.Semaphore, unread: list, receive, send):
        self.line = line
        self.unread = unread  # the connect message, then the future of the message after it
        self._receive = receive
        self._send = send

    async def receive(self):
        if self.unread:
            message = self.unread.pop(0)
            return await message if isinstance(message, asyncio.Future) else message
        return await self._receive()

    async def send(self, message):
        await self._send(message)
        if message["type"] in ("websocket.send", "websocket.close"):
            self.release()

    def release(self) -> None:
        if self.line is not None:
            self.line.release()
            self.line = None

    def close(self) -> None:
        self.release()
        for message in self.unread:
            if isinstance(message, asyncio.Future):
                message.cancel()  # the application never read it
        self.unread.clear()


def _leave_line(line: asyncio.Semaphore, turn: asyncio.Future) -> None:
    """Give up a place in line, or the turn itself if it was already granted."""
    if not turn.cancel():  # done: the turn was ours
        line.release()
    # Cancelled while being granted, Semaphore.acquire gives the turn back itself.


class SocketMetrics:
    """Counts this process's WebSocket handshakes by outcome, its open sockets, and their closes by code.

    Outermost in the WebSocket stack (shop/asgi.py), so a handshake refused by the origin check counts too.
    A handshake is `accepted` at its first frame (the consumer's `hello`); one the consumer closes before
    that is named by its close code (notifications/metrics.py). Per frame it costs one comparison.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        socket = _MeteredSocket(receive, send)
        try:
            await self.app(scope, socket.receive, socket.send)
        finally:
            socket.end()


class _MeteredSocket:
    __slots__ = ("_receive", "_send", "opened", "greeted", "close_code", "client_code")

    def __init__(self, receive, send):
        self._receive = receive
        self._send = send
        self.opened = False  # accepted: counted in shop_ws_connections
        self.greeted = False  # its first frame went out: the handshake counted as accepted
        self.close_code = None  # the server's, when it closed first
        self.client_code = None  # the code of the client's (or daphne's) websocket.disconnect

    async def receive(self):
        message = await self._receive()
        if message["type"] == "websocket.disconnect" and self.client_code is None:
            self.client_code = message.get("code", 1005)
        return message

    async def send(self, message):
        kind = message["type"]
        if kind == "websocket.send":
            if not self.greeted:
                self.greeted = True
                metrics.ws_handshakes.labels(outcome="accepted").inc()
        elif kind == "websocket.accept":
            if not self.opened:
                self.opened = True
                metrics.ws_connections.inc()
        elif kind == "websocket.close" and self.close_code is None:
            self.close_code = message.get("code") or 1000
        await self._send(message)

    def end(self) -> None:
        """The application is done: count the handshake if it never got a frame out, and the close."""
        if not self.greeted:
            if not self.opened and self.close_code is not None:
                outcome = "refused"  # closed before accept: daphne answers HTTP 403
            elif self.close_code is not None:
                outcome = metrics.HANDSHAKE_CLOSE_OUTCOMES.get(self.close_code, "error")
            else:
                outcome = "abandoned"
            metrics.ws_handshakes.labels(outcome=outcome).inc()
        if self.opened:
            metrics.ws_connections.dec()
            if self.close_code is not None:
                code = str(self.close_code)  # the server's own codes: a handful
            elif self.client_code is None:
                code = "none"
            else:
                # A client may send any code from 3000 to 4999: only the standard ones get a series of their own.
                code = str(self.client_code) if 1000 <= self.client_code < 2000 else "other"
            metrics.ws_closes.labels(code=code).inc()


class SocketAuth:
    """The handshake's session in the scope, and its user or the connect ticket that spares looking it up: one copy.

    Channels' `AuthMiddlewareStack` copies the scope at each of its layers (cookies, session, user: four copies), and
    each lives as long as the socket (docs/performance.md, "Memory per socket"). With a connect ticket for its session
    cookie the scope gets `ticket` and no `user`, and nothing is read here: the consumer checks the ticket against the
    session and the user in the one database read it makes anyway (notifications/tickets.py). A ticket that does not
    verify (forged, expired, another session's, malformed) leaves the cookie alone to decide, through Channels'
    own `get_user`, so what authenticates a socket without a ticket is unchanged.
    """

    def __init__(self, app):
        self.app = app
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        cookie = next((value for name, value in scope["headers"] if name == b"cookie"), b"")
        cookies = parse_cookie(cookie.decode("latin-1")) if cookie else {}
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        scope = {**scope, "cookies": cookies, "session": session}
        ticket = socket_ticket_read(text=_ticket_text(scope), session_key=session.session_key)
        if ticket is not None:
            scope["ticket"] = ticket
        else:
            scope["user"] = await get_user(scope)
        return await self.app(scope, receive, send)


def _ticket_text(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket")
    return values[-1] if values else None
