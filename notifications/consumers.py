"""The NotificationConsumer: one authenticated socket per browser tab (protocol: docs/protocol.md)."""

import asyncio
import json
import logging
import math
import traceback
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from accounts.selectors import session_authenticates
from notifications import layer_watch
from notifications.client_input import MAX_JSON_DEPTH, client_int, client_int_from_text, client_json
from notifications.frames import error_frame, hello_frame, notification_frame
from notifications.groups import user_group, user_groups
from notifications.receipts import receipt_gather
from notifications.selectors import UnreadState, notifications_between, notifications_resume
from notifications.services import notifications_mark_read, session_digest
from notifications.socket_handlers import (
    client_message_handler,
    layer_message_handler,
    socket_close_hooks,
    socket_open_hooks,
)
from notifications.tickets import session_auth_digest, socket_ticket_sign, socket_ticket_user
from notifications.user_limits import (
    SocketWindows,
    rate_limits,
    user_message_allow,
    user_socket_register,
    user_socket_unregister,
)
from shop.sessions import session_socket_id

logger = logging.getLogger(__name__)

# Close codes. daphne (through autobahn) lets an application close only with 1000 or
# 3000-4999, so a code that mirrors a standard one is 4000 + that code (4001 for 1001).
# The page stops retrying on 4401 and 4403 only.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SESSION_ENDED = 4403
CLOSE_RATE_LIMITED = 4429
CLOSE_TOO_BIG = 4009  # 1009, message too big
CLOSE_GOING_AWAY = 4001  # 1001, this server is shutting down: reconnect (to another one) and resume
CLOSE_SERVICE_RESTART = layer_watch.CLOSE_SERVICE_RESTART  # 4012: the channel layer was lost
CLOSE_TRY_AGAIN_LATER = 4013  # 1013, the channel layer is unreachable right now
CLOSE_REPLACED = 4409  # the user opened more than NOTIFICATION_SOCKETS_PER_USER: this, the oldest, made room
CLOSE_INTERNAL_ERROR = 4011  # 1011, a bug in a handler: reconnect with backoff and resume


class DirectDispatchMixin:
    """Channels' dispatch, minus its per-message `aclose_old_connections()`.

    channels hops to its one shared sync thread before every handler to close stale
    database connections: for every connect, every client message and every
    notification delivered. A consumer whose every database call goes through
    `database_sync_to_async`, which does that itself, only pays for the hop; it was
    the largest cost of a connect storm or a burst (docs/performance.md).
    """

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is not None:
            await handler(message)
            return
        registered = layer_message_handler(message.get("type"))
        if registered is None:
            # From another version of the shop on the same layer (a rolling deploy): not a reason to drop the socket.
            _log_unknown_message_once(message.get("type"))
            return
        await registered(self, message)


_unknown_message_types: set = set()


def _log_unknown_message_once(message_type) -> None:
    if message_type not in _unknown_message_types:
        _unknown_message_types.add(message_type)
        logger.warning("Dropped a channel-layer message of unknown type %r (logged once per type)", message_type)


class NotificationConsumer(DirectDispatchMixin, AsyncJsonWebsocketConsumer):
    """Delivers a user's notifications in seq order, with no gaps and no duplicates per connection."""

    async def __call__(self, scope, receive, send):
        """Turn the loss of Redis, a server shutdown or a bug into a close the client retries, not a 1011.

        Whichever way the socket ends, it leaves its groups.
        """
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, ConnectionError) as error:
            # Group memberships may not have survived (Redis keeps none across a restart):
            # the client reconnects, rejoins and resumes with ?after=. A socket that was
            # still connecting is accepted first, so the page sees a close code, not an HTTP 403.
            code = CLOSE_SERVICE_RESTART if self.accepted else CLOSE_TRY_AGAIN_LATER
            logger.warning("Channel layer lost (%s); closing the socket with %s", error, code)
            if not self.accepted:
                await _send_quietly(send, {"type": "websocket.accept"})
            await _send_quietly(send, {"type": "websocket.close", "code": code})
        except asyncio.CancelledError:
            # The server is stopping this application: say goodbye with a code the page retries
            # elsewhere. (On SIGTERM shop/drain.py has already closed every socket with 1012, so
            # this reaches only one the drain's deadline cut short: docs/reliability.md, note on 3.)
            await _send_quietly(send, {"type": "websocket.close", "code": CLOSE_GOING_AWAY})
            raise
        except Exception as error:
            _log_unexpected(error)
            if not self.accepted:
                await _send_quietly(send, {"type": "websocket.accept"})
            await _send_quietly(send, {"type": "websocket.close", "code": CLOSE_INTERNAL_ERROR})
        finally:
            await self._leave()

    accepted = False
    counted = False  # against the user's socket cap
    opened = False  # set up and announced to the apps' open hooks: their close hooks are owed
    unread_pending: dict | None = None  # the newest `unread` frame held back, merged with those it replaced
    unread_flush: asyncio.Task | None = None
    unread_sent_at = float("-inf")
    acked_seq = 0  # the highest seq this socket's page acknowledged: a lower or equal ack writes nothing
    windows: SocketWindows | None = None  # made at the first message: most sockets never send one
    extensions: dict | None = None  # what apps' registered handlers keep per socket, by app (socket_handlers.py)
    beside: set | None = None  # apps' tasks running beside the handlers (task_beside), cancelled when it ends

    closing = False  # the server closed it: client messages still in flight are not acted on

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def close(self, code=None, reason=None):
        self.closing = True
        await super().close(code, reason)

    async def connect(self):
        """Authenticate, join the user's groups, say hello, then replay what the client missed."""
        ticket = self.scope.get("ticket")
        session_key = self.scope["session"].session_key
        after, after_error = _parse_after(self.scope["query_string"])
        if ticket is not None:
            # Joined before the read, so nothing committed in between is missed; the audiences once the user is read.
            self.user_id, self.session_digest = ticket.user_id, ticket.socket_session
            self.groups_joined = [user_group(ticket.user_id)]
        else:
            user = self.scope["user"]
            if not user.is_authenticated:
                await self.accept()
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            self.user_id = user.pk
            self.session_digest = session_digest(session_socket_id(self.scope["session"]))  # for `session_ended`
            self.groups_joined = user_groups(user)
        self.extensions = {}
        self.beside = set()
        self.rate_limits = rate_limits(settings.NOTIFICATION_SOCKET_RATE_LIMIT)
        self.strikes = 0
        # Join before reading the backlog, so nothing committed in between is missed;
        # live messages wait until connect returns and duplicates are dropped by seq.
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        # Read again once joined: a session that ended before this read is refused here, one that ends
        # after it announces its end (after the delete, accounts/signals.py) to a group this socket is in.
        user, resume = await database_sync_to_async(_socket_open_read)(
            ticket=ticket, user=self.scope.get("user"), session_key=session_key, after_seq=after
        )
        if user is None:
            # Refused: out of the groups at once, and what reached it meanwhile counts as sent (none goes out).
            await self._leave()
            self.last_sent_seq = math.inf
            await self.accept()
            await self.close(code=CLOSE_SESSION_ENDED)
            return
        self.user = user
        for group in user_groups(user):
            await self.group_join(group)  # a ticket's audiences (staff): live frames with no seq, nothing to resume
        self.ticket_parts = {
            "user_id": user.pk,
            "session_key": session_key,
            "socket_session": self.session_digest,
            # The ticket's, just checked against the user's: an HMAC of the password hash saved, not computed again.
            "auth_digest": ticket.auth_digest if ticket is not None else session_auth_digest(user),
        }
        await self.accept()
        layer_watch.watch(self, groups=self.groups_joined)
        await self._count_socket()
        self.opened = True
        for hook in socket_open_hooks():
            await hook(self)

        hello = hello_frame(user_id=user.pk, last_seq=resume.last_seq, unread=resume.unread, ticket=self._ticket())
        await self.send_json(hello)
        if after_error:
            await self.send_json(error_frame("invalid_after", after_error))
        if resume.reset or after_error:
            await self.send_json({"type": "reset"})
            self.last_sent_seq = resume.last_seq
            return
        self.last_sent_seq = after if after is not None else resume.last_seq
        for notification in resume.backlog:
            await self._send_notification(notification_frame(notification, unread=resume.unread))

    def _ticket(self) -> str:
        """A fresh connect ticket for this socket's next reconnect (notifications/tickets.py)."""
        return socket_ticket_sign(**self.ticket_parts)

    async def disconnect(self, code):
        await self._leave()

    async def group_join(self, group: str) -> None:
        """Join a group an app's handler chose for this socket after authorising its user; left with the others."""
        if group not in self.groups_joined:
            self.groups_joined.append(group)
            await self.channel_layer.group_add(group, self.channel_name)

    async def group_leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.remove(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    def task_beside(self, coroutine) -> asyncio.Task:
        """Run an app's coroutine beside this socket's handlers, so the socket goes on receiving meanwhile.

        It ends as a handler would: the loss of Redis or a bug closes the socket with the same codes, and it is
        cancelled when the socket ends.
        """
        task = asyncio.create_task(self._run_beside(coroutine))
        self.beside.add(task)
        task.add_done_callback(self.beside.discard)
        return task

    async def _run_beside(self, coroutine) -> None:
        try:
            await coroutine
        except (RedisError, ConnectionError) as error:
            logger.warning("Channel layer lost (%s); closing the socket with %s", error, CLOSE_SERVICE_RESTART)
            await self.close(code=CLOSE_SERVICE_RESTART)
        except Exception as error:
            _log_unexpected(error)
            await self.close(code=CLOSE_INTERNAL_ERROR)

    async def _leave(self) -> None:
        """Leave the groups and the layer watch; once, however the socket ends (disconnect, crash, cancellation)."""
        layer_watch.unwatch(self)
        for task in list(self.beside or ()):
            task.cancel()
        if self.unread_flush is not None:
            self.unread_flush.cancel()
        counted, self.counted = self.counted, False
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        try:
            if counted:
                await user_socket_unregister(user_id=self.user_id, channel_name=self.channel_name)
        except (RedisError, ConnectionError):
            pass  # Redis is gone; the entry expires with the socket's lifetime
        for group in groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except (RedisError, ConnectionError):
                pass  # Redis is gone, and the memberships it held with it (the pub/sub layer drops its own first)
        opened, self.opened = self.opened, False
        for hook in socket_close_hooks() if opened else ():
            try:
                await hook(self)
            except (RedisError, ConnectionError):
                pass  # what the app keeps in Redis for the socket expires with it

    # --- From the client ---------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        """Validate and route one client message; bad input gets an error frame, never a crash."""
        if self.closing or not hasattr(self, "user_id"):
            return  # being closed: unauthenticated, or the session ended, or replaced
        too_large = bytes_data is None and len(text_data) > settings.NOTIFICATION_SOCKET_MAX_MESSAGE_BYTES
        content, invalid = None, False
        if bytes_data is None and not too_large:
            try:
                content = client_json(text_data)
            except ValueError:
                invalid = True
        if not await self._within_rate_limit(user_wide=not _is_ack(content)):
            return
        if bytes_data is not None:
            await self.send_json(error_frame("binary_not_supported", "Send JSON text frames."))
            return
        if too_large:
            await self.send_json(error_frame("too_large", "Message too large."))
            await self.close(code=CLOSE_TOO_BIG)
            return
        if invalid:
            detail = f"Messages must be JSON, nested at most {MAX_JSON_DEPTH} deep."
            await self.send_json(error_frame("invalid_json", detail))
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_json(error_frame("invalid_message", 'Messages are objects with a string "type".'))
            return
        handler = {
            "ping": self._ping,
            "ack": self._ack,
            "mark_read": self._mark_read,
            "mark_all_read": self._mark_all_read,
        }.get(content["type"])
        if handler is not None:
            await handler(content)
            return
        registered = client_message_handler(content["type"])
        if registered is None:
            await self.send_json(error_frame("unknown_type", "Unknown message type."))
            return
        await registered(self, content)

    async def _ping(self, content):
        if content.get("ticket") is True:
            # The page's ping, every 25 s: its ticket stays fresh for a reconnect whenever the socket drops.
            await self.send_json({"type": "pong", "ticket": self._ticket()})
            return
        await self.send_json({"type": "pong"})

    async def _ack(self, content):
        """The page showed everything up to `seq`: gathered to be written with others, unless it says nothing new."""
        seq = client_int(content.get("seq"), minimum=1)
        if seq is None:
            await self.send_json(error_frame("invalid_field", '"seq" must be an integer from 1 to 2**63-1.'))
            return
        if seq > self.last_sent_seq:
            # Only what this socket delivered can have been shown through it: nothing from the future or elsewhere.
            detail = f"Acknowledge at most seq {self.last_sent_seq}, the last this socket sent."
            await self.send_json(error_frame("invalid_ack", detail))
            return
        if seq <= self.acked_seq:
            return
        receipt_gather(user_id=self.user_id, up_to_seq=seq)
        self.acked_seq = seq

    async def _mark_read(self, content):
        seq = client_int(content.get("seq"), minimum=1)
        if seq is None:
            await self.send_json(error_frame("invalid_field", '"seq" must be an integer from 1 to 2**63-1.'))
            return
        await database_sync_to_async(notifications_mark_read)(user_id=self.user_id, seq=seq)

    async def _mark_all_read(self, content):
        await database_sync_to_async(notifications_mark_read)(user_id=self.user_id)

    async def _within_rate_limit(self, *, user_wide: bool) -> bool:
        """A flooding client (or user, over all their sockets) gets an error, then is closed after repeated offences.

        The user-wide count (a Redis round trip) guards the database work a user could multiply over their sockets;
        an ack has none of its own (gathered, written at most once per seq a socket sent), so only its socket's
        limit counts it (docs/protocol.md, "ack").
        """
        if self.windows is None:
            self.windows = SocketWindows(self.rate_limits)
        if not self.windows.hit(asyncio.get_running_loop().time()):
            return await self._rate_limited()
        if user_wide and not await user_message_allow(user_id=self.user_id):
            return await self._rate_limited()
        return True

    async def _rate_limited(self) -> bool:
        self.strikes += 1
        if self.strikes >= settings.NOTIFICATION_SOCKET_RATE_LIMIT_STRIKES:
            await self.close(code=CLOSE_RATE_LIMITED)
        elif self.strikes == 1:
            await self.send_json(error_frame("rate_limited", "Too many messages; slow down."))
        return False

    async def _count_socket(self) -> None:
        """Count this socket against the user's cap (all processes); the oldest beyond it are told to close."""
        oldest = await user_socket_register(user_id=self.user_id, channel_name=self.channel_name)
        self.counted = True
        for channel_name in oldest:
            await self.channel_layer.send(channel_name, {"type": "socket.replaced"})

    # --- From the channel layer -----------------------------------------------------------

    async def notification_created(self, event):
        """A live notification: send it, after filling any gap from the database, or drop a duplicate."""
        frame = event["frame"]
        seq = frame["seq"]
        if seq <= self.last_sent_seq:
            return
        if seq > self.last_sent_seq + 1:
            # Something published out of order (or re-published) is missing: every
            # lower seq has committed by now, so the database has it.
            missed = await database_sync_to_async(notifications_between)(
                user_id=self.user_id, after_seq=self.last_sent_seq, up_to_seq=seq - 1
            )
            unread = UnreadState(count=frame["unread"], version=frame["unread_version"])
            for notification in missed:
                await self._send_notification(notification_frame(notification, unread=unread))
        await self._send_notification(frame)

    async def unread_changed(self, event):
        """A new unread count: sent at once, then at most one per interval, merged, so a burst is few frames."""
        frame = event["frame"]
        if self.unread_pending is not None:
            merged = _unread_merged(self.unread_pending, frame)
            if merged is None:
                await self._send_unread()  # the two cannot be said in one frame
            else:
                frame = merged
        self.unread_pending = frame
        if self.unread_flush is None:
            wait = self.unread_sent_at + settings.NOTIFICATION_UNREAD_FRAME_INTERVAL - asyncio.get_running_loop().time()
            if wait <= 0:
                await self._send_unread()
            else:
                self.unread_flush = asyncio.create_task(self._send_unread_after(wait))

    async def _send_unread_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self.unread_flush = None
        await self._send_unread()

    async def _send_unread(self) -> None:
        frame, self.unread_pending = self.unread_pending, None
        if self.unread_flush is not None:
            self.unread_flush.cancel()
            self.unread_flush = None
        if frame is not None:
            self.unread_sent_at = asyncio.get_running_loop().time()
            await self.send_json(frame)

    async def socket_replaced(self, event):
        """The user opened a socket beyond their cap and this one is their oldest: close, and tell the page why."""
        self.counted = False  # already taken off the count
        await self.close(code=CLOSE_REPLACED)

    async def frame_forward(self, event):
        """A live frame with no seq for one of this socket's groups (a kind's fan-out, e.g. staff's `order_changed`)."""
        await self.send_json(event["frame"])

    async def session_ended(self, event):
        """This session's logout, a password set elsewhere, or deactivation: close, and tell the page not to retry."""
        session = self.session_digest
        if event.get("session", session) != session or event.get("except_session") == session:
            return  # another session of the user ended, or this one set the new password
        await self.close(code=CLOSE_SESSION_ENDED)

    async def _send_notification(self, frame):
        if frame["seq"] <= self.last_sent_seq:
            return
        # An `unread` frame held back goes first: what it marks read came before this notification.
        await self._send_unread()
        await self.send_json(frame)
        self.last_sent_seq = frame["seq"]

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, separators=(",", ":"))


def _socket_open_read(*, ticket, user, session_key: str | None, after_seq: int | None) -> tuple:
    """The socket's user if its session still signs it in (else None), and its resume; one hop to the database."""
    if ticket is not None:
        user = socket_ticket_user(ticket=ticket, session_key=session_key)
    elif not session_authenticates(session_key=session_key, user_id=user.pk):
        user = None
    if user is None:
        return None, None
    resume = notifications_resume(user_id=user.pk, after_seq=after_seq, max_backlog=settings.NOTIFICATION_MAX_BACKLOG)
    return user, resume


def _is_ack(content: object) -> bool:
    return isinstance(content, dict) and content.get("type") == "ack"


def _unread_merged(older: dict, newer: dict) -> dict | None:
    """One `unread` frame saying what both say (the count of the higher version), or None if none can."""
    if newer["unread_version"] < older["unread_version"]:
        older, newer = newer, older  # frames from two processes can cross
    if newer["read_seqs"] is None:
        return newer  # "all read" at a later version covers everything marked before it
    if older["read_seqs"] is None:
        return None  # "all read" then more: two statements
    return {**newer, "read_seqs": sorted({*older["read_seqs"], *newer["read_seqs"]})}


# Where each kind of unexpected error was raised: its traceback is logged once per process, then one line.
_reported_errors: set[tuple[str, str, int]] = set()


def _log_unexpected(error: Exception) -> None:
    """One line per socket closed by a bug; the traceback only the first time this process sees it."""
    origin = traceback.extract_tb(error.__traceback__)[-1]
    key = (type(error).__qualname__, origin.filename, origin.lineno)
    first = key not in _reported_errors
    _reported_errors.add(key)
    logger.log(
        logging.ERROR if first else logging.WARNING,
        "Unexpected %s at %s:%s: %.200r; closed the socket with %s%s",
        key[0],
        origin.filename.rsplit("/", 1)[-1],
        origin.lineno,
        str(error),
        CLOSE_INTERNAL_ERROR,
        "" if first else " (traceback logged the first time)",
        exc_info=error if first else None,
    )


async def _send_quietly(send, message: dict) -> None:
    try:
        await send(message)
    except Exception:  # the connection may already be gone; nothing more to do
        pass


def _parse_after(query_string: bytes) -> tuple[int | None, str | None]:
    """The `after` query parameter as a non-negative int, or an error message."""
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return None, None
    after = client_int_from_text(values[-1])
    if after is None:
        return None, '"after" must be ASCII digits, from 0 to 2**63-1.'
    return after, None
