"""The chat messages of the notifications socket: what a client sends and what the layer delivers (docs/protocol.md).

Registered with the generic consumer (notifications/socket_handlers.py). Per socket, the conversations it watches
(`chat.open`), each with the last seq it sent, so that a conversation's messages reach it in order, with no gap
and no duplicate: the same rule, and the same gap-filling from the database, as the notifications'.
"""

import asyncio
import re
import uuid
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from notifications.client_input import client_int
from notifications.frames import error_frame
from notifications.socket_handlers import (
    client_message_register,
    layer_message_register,
    socket_close_register,
    socket_open_register,
)
from notifications.user_limits import user_rate_allow
from support import presence
from support.frames import (
    author_name,
    chat_inbox_changed_frame,
    chat_inbox_opened_frame,
    chat_message_frame,
    chat_opened_frame,
    chat_sent_frame,
    chat_typing_frame,
    message_payload,
    previous_seq,
)
from support.groups import INBOX_GROUP, conversation_staff_group, typing_audience
from support.rules import ChatRefused, inbox_viewer, message_body_clean, sees_internal_notes
from support.selectors import conversation_open, messages_between
from support.services import conversation_read, message_post

EXTENSION = "support"  # its key in the socket's `extensions`
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# At most one `chat.typing` relayed per socket and conversation in this many seconds; the rest are dropped (a page
# repeats it while the user types, well within CHAT_TYPING_SECONDS).
TYPING_RELAY_INTERVAL = 1.0


@dataclass
class Watch:
    """One conversation a socket shows: the last seq it sent of it (in a backlog, live, or as a chat.sent)."""

    last_sent_seq: int
    customer_id: int  # the order's, from the server: whom staff's typing goes to
    typing_relayed_at: float = float("-inf")


@dataclass
class _SocketChat:
    """A socket's chat: the conversations it watches, and the order its frames of them go out in."""

    watching: dict[int, Watch] = field(default_factory=dict)
    # Held while frames of watched conversations are decided and sent (a backlog, a live message, a post's ack),
    # so the post tasks and the socket's own handlers never send a seq twice or out of order.
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)
    posting: asyncio.Task | None = None  # the last chat.send handed to a task
    # (order, client_id) of the sends not yet answered: their live copies are not sent, their chat.sent is.
    in_flight: set[tuple[int, str]] = field(default_factory=set)


def _chat(socket) -> _SocketChat:
    return socket.extensions.setdefault(EXTENSION, _SocketChat())


def _watching(socket) -> dict[int, Watch]:
    return _chat(socket).watching


class _Invalid(Exception):
    """A field of the client's message is not what the protocol says."""


def _order_id(content: dict) -> int:
    order_id = client_int(content.get("order"), minimum=1)
    if order_id is None:
        raise _Invalid('"order" must be an order id: an integer from 1 to 2**63-1.')
    return order_id


def _client_id(content: dict) -> uuid.UUID:
    value = content.get("client_id")
    # The form crypto.randomUUID() and str(uuid4()) give, only: uuid.UUID() also takes braces, "urn:uuid:", no
    # dashes or dashes anywhere, and chat.sent echoes the canonical form the client must recognise.
    if not isinstance(value, str) or not CANONICAL_UUID.fullmatch(value):
        raise _Invalid('"client_id" must be a UUID in its canonical lowercase form ("0b7d1c5e-8a4f-4f57-…").')
    return uuid.UUID(value)


async def _refuse(socket, code: str, detail: str, **context) -> None:
    await socket.send_json(error_frame(code, detail, **context))


# --- From the client ---------------------------------------------------------------------


async def chat_send(socket, content: dict) -> None:
    """Store a message (or find the one a retry already stored), ack it with `chat.sent`; else an error frame."""
    context = {}
    try:
        order_id = _order_id(content)
        context["order"] = order_id
        client_id = _client_id(content)
        context["client_id"] = str(client_id)
        internal = content.get("internal", False)
        if type(internal) is not bool:
            raise _Invalid('"internal" must be true or false.')
        message_body_clean(content.get("body"))  # refused before it counts against the user's limit
    except _Invalid as invalid:
        await _refuse(socket, "invalid_field", str(invalid), **context)
        return
    except ChatRefused as refused:
        await _refuse(socket, refused.code, refused.detail, **context)
        return
    if not await user_rate_allow(name="chat.send", user_id=socket.user_id, spec=settings.CHAT_SEND_RATE_LIMIT):
        await _refuse(socket, "rate_limited", "Too many messages; wait a moment and send it again.", **context)
        return
    # Stored in a task of its own, so that the socket goes on receiving (a status notification, the other side's
    # messages) while the post waits for the database; one socket's posts are still stored in the order sent.
    chat = _chat(socket)
    chat.in_flight.add((order_id, str(client_id)))
    chat.posting = socket.task_beside(
        _post_in_turn(socket, after=chat.posting, order_id=order_id, body=content["body"], client_id=client_id,
                      internal=internal, context=context)
    )  # fmt: skip


async def _post_in_turn(socket, *, after: asyncio.Task | None, order_id, body, client_id, internal, context) -> None:
    """Store the message once the socket's previous post is done, then ack it in its place in the sequence."""
    chat = _chat(socket)
    try:
        if after is not None:
            await asyncio.wait([after])
        try:
            posted = await database_sync_to_async(message_post)(
                author=socket.user, order_id=order_id, body=body, client_id=client_id, internal=internal
            )
        except ChatRefused as refused:
            await _refuse(socket, refused.code, refused.detail, **context)
            return
        message = posted.message
        async with chat.sending:
            watch = chat.watching.get(order_id)
            if watch is not None and message.seq > watch.last_sent_seq:
                # The ack delivers the message here: what came before it, and this socket lacks, goes first.
                await _catch_up(
                    socket, order_id, watch, seq=message.seq, public_previous_seq=message.public_previous_seq
                )
                watch.last_sent_seq = message.seq
            frame = chat_sent_frame(order_id=order_id, client_id=str(client_id), message=message_payload(message))
            await socket.send_json(frame)
    finally:
        chat.in_flight.discard((order_id, str(client_id)))  # only once its chat.sent (or refusal) went out


async def chat_open(socket, content: dict) -> None:
    """Watch a conversation: `chat.opened`, then every message after `after` in order, then live ones."""
    try:
        order_id = _order_id(content)
    except _Invalid as invalid:
        await _refuse(socket, "invalid_field", str(invalid))
        return
    after = client_int(content.get("after", 0))
    if after is None:
        await _refuse(socket, "invalid_field", '"after" must be a seq: an integer from 0 to 2**63-1.', order=order_id)
        return
    watching = _watching(socket)
    if order_id not in watching and len(watching) >= settings.CHAT_CONVERSATIONS_PER_SOCKET:
        detail = f"A socket watches at most {settings.CHAT_CONVERSATIONS_PER_SOCKET} conversations: close one first."
        await _refuse(socket, "too_many_conversations", detail, order=order_id)
        return
    staff_view = sees_internal_notes(socket.user)
    if staff_view:
        # Joined before the backlog is read, so nothing committed in between is missed (duplicates drop by seq);
        # any staff member may watch any conversation, so joining first authorises nothing it should not.
        await socket.group_join(conversation_staff_group(order_id))
    async with _chat(socket).sending:
        await _open(socket, order_id=order_id, after=after, staff_view=staff_view)


async def _open(socket, *, order_id: int, after: int, staff_view: bool) -> None:
    watching = _watching(socket)
    try:
        opening = await database_sync_to_async(conversation_open)(
            viewer=socket.user, order_id=order_id, after=after, max_backlog=settings.CHAT_MAX_BACKLOG
        )
    except ChatRefused as refused:
        if staff_view and order_id not in watching:
            await socket.group_leave(conversation_staff_group(order_id))
        await _refuse(socket, refused.code, refused.detail, order=order_id)
        return
    # Live messages and post acks that arrive meanwhile wait for the lock: they are judged against this seq.
    watching[order_id] = Watch(last_sent_seq=opening.last_seq, customer_id=opening.customer_id)
    present = await presence.conversation_watched(socket, order_id=order_id, customer_id=opening.customer_id)
    await socket.send_json(
        chat_opened_frame(
            order_id=order_id,
            last_seq=opening.last_seq,
            reset=opening.reset,
            truncated=opening.truncated,
            read=opening.read,
            presence=present._asdict(),
        )
    )
    for message in opening.messages:
        await socket.send_json(_message_frame(order_id, message, staff_view=staff_view))


async def chat_close(socket, content: dict) -> None:
    """Stop watching a conversation (no reply): room for another under CHAT_CONVERSATIONS_PER_SOCKET."""
    try:
        order_id = _order_id(content)
    except _Invalid as invalid:
        await _refuse(socket, "invalid_field", str(invalid))
        return
    _watching(socket).pop(order_id, None)
    await socket.group_leave(conversation_staff_group(order_id))
    await presence.conversation_unwatched(socket, order_id)


async def chat_typing(socket, content: dict) -> None:
    """The user is typing in a watched conversation: relayed to the other side's sockets watching it, never stored."""
    try:
        order_id = _order_id(content)
    except _Invalid as invalid:
        await _refuse(socket, "invalid_field", str(invalid))
        return
    watch = _watching(socket).get(order_id)
    if watch is None:
        await _refuse(socket, "not_watching", "Open the conversation (chat.open) before typing in it.", order=order_id)
        return
    now = asyncio.get_running_loop().time()
    if now - watch.typing_relayed_at < TYPING_RELAY_INTERVAL:
        return  # best effort: the page repeats it while the user types
    watch.typing_relayed_at = now
    from_staff = sees_internal_notes(socket.user)
    frame = chat_typing_frame(
        order_id=order_id,
        author_name=author_name(socket.user, from_staff=from_staff),
        author_is_staff=from_staff,
        expires_in=settings.CHAT_TYPING_SECONDS,
    )
    group = typing_audience(order_id=order_id, customer_id=watch.customer_id, from_staff=from_staff)
    await socket.channel_layer.group_send(
        group, {"type": "chat.typing", "order": order_id, "from_staff": from_staff, "frame": frame}
    )


async def chat_read(socket, content: dict) -> None:
    """Move the user's read mark to `seq`; both sides hear of it as `chat.read` (no other reply)."""
    try:
        order_id = _order_id(content)
        seq = client_int(content.get("seq"), minimum=1)
        if seq is None:
            raise _Invalid('"seq" must be an integer from 1 to 2**63-1.')
    except _Invalid as invalid:
        await _refuse(socket, "invalid_field", str(invalid))
        return
    try:
        await database_sync_to_async(conversation_read)(reader=socket.user, order_id=order_id, seq=seq)
    except ChatRefused as refused:
        await _refuse(socket, refused.code, refused.detail, order=order_id)


# --- From the channel layer ----------------------------------------------------------------


async def chat_message_delivered(socket, event: dict) -> None:
    """A new message of a watched conversation: sent after any this socket missed, or dropped as a duplicate."""
    async with _chat(socket).sending:
        await _deliver(socket, event)


async def _deliver(socket, event: dict) -> None:
    order_id, message = event["order"], event["message"]
    watch = _watching(socket).get(order_id)
    staff_view = sees_internal_notes(socket.user)
    if watch is None or (message["internal"] and not staff_view):
        return  # not shown here; and a note never reaches a customer's socket, whichever group it came through
    seq = message["seq"]
    if seq <= watch.last_sent_seq:
        return
    if event.get("author_id") == socket.user_id and (order_id, event.get("client_id")) in _chat(socket).in_flight:
        return  # this socket's own send: its chat.sent takes the message's place in the sequence
    await _catch_up(socket, order_id, watch, seq=seq, public_previous_seq=event["public_previous_seq"])
    before = previous_seq(seq=seq, public_previous_seq=event["public_previous_seq"], staff_view=staff_view)
    await socket.send_json(chat_message_frame(order_id=order_id, message=message, previous_seq=before))
    watch.last_sent_seq = seq


async def chat_read_delivered(socket, event: dict) -> None:
    """A read mark moved in a watched conversation: forwarded as it is (marks only move on; pages keep the highest)."""
    if event["order"] not in _watching(socket):
        return
    if event["staff_only"] and not sees_internal_notes(socket.user):
        return
    await socket.send_json(event["frame"])


async def chat_typing_delivered(socket, event: dict) -> None:
    """The other side is typing in a watched conversation: forwarded (never to the typist's own side)."""
    if event["order"] in _watching(socket) and sees_internal_notes(socket.user) != event["from_staff"]:
        await socket.send_json(event["frame"])


async def _catch_up(socket, order_id: int, watch: Watch, *, seq: int, public_previous_seq: int) -> None:
    """Send, from the database, what the socket lacks before `seq` (a publish lost, or crossing another)."""
    staff_view = sees_internal_notes(socket.user)
    if previous_seq(seq=seq, public_previous_seq=public_previous_seq, staff_view=staff_view) <= watch.last_sent_seq:
        return
    missed = await database_sync_to_async(messages_between)(
        order_id=order_id, after_seq=watch.last_sent_seq, before_seq=seq, staff_view=staff_view
    )
    for message in missed:
        await socket.send_json(_message_frame(order_id, message, staff_view=staff_view))
        watch.last_sent_seq = message.seq


def _message_frame(order_id: int, message, *, staff_view: bool) -> dict:
    before = previous_seq(seq=message.seq, public_previous_seq=message.public_previous_seq, staff_view=staff_view)
    return chat_message_frame(order_id=order_id, message=message_payload(message), previous_seq=before)


# --- The staff inbox -----------------------------------------------------------------------


async def chat_inbox(socket, content: dict) -> None:
    """Show the staff inbox live: join its group and say so (`chat.inbox_opened`); anyone else: `not_allowed`."""
    if not await database_sync_to_async(inbox_viewer)(socket.user):
        await _refuse(socket, "not_allowed", "Only staff who may view conversations see the support inbox.")
        return
    await socket.group_join(INBOX_GROUP)
    await socket.send_json(chat_inbox_opened_frame())


async def chat_inbox_changed_delivered(socket, event: dict) -> None:
    """A conversation changed: the inbox page fetches its rows again (the event names the order, nothing more)."""
    if sees_internal_notes(socket.user):  # only staff sockets join the group; never forwarded to anyone else
        await socket.send_json(chat_inbox_changed_frame(order_id=event["order"]))


def support_socket_register() -> None:
    """Give the notifications socket its chat messages (SupportConfig.ready)."""
    client_message_register("chat.send", chat_send)
    client_message_register("chat.open", chat_open)
    client_message_register("chat.close", chat_close)
    client_message_register("chat.read", chat_read)
    client_message_register("chat.inbox", chat_inbox)
    client_message_register("chat.typing", chat_typing)
    layer_message_register("chat.message", chat_message_delivered)
    layer_message_register("chat.read", chat_read_delivered)
    layer_message_register("chat.inbox_changed", chat_inbox_changed_delivered)
    layer_message_register("chat.typing", chat_typing_delivered)
    layer_message_register("chat.presence", presence.presence_hinted)
    layer_message_register("chat.presence.customer", presence.customer_presence_hinted)
    socket_open_register(presence.presence_socket_opened)
    socket_close_register(presence.presence_socket_closed)
