"""Presence in a conversation: is its customer online, is a staff member viewing it (docs/protocol.md, "Presence").

Both are read from Redis, so every web process agrees. `customer_online`: the order's customer has a socket open
on any page, in the users' socket registry (notifications/user_limits.py). `staff_viewing`: a staff socket watches
the conversation, in `<prefix>:presence:order:<id>:staff`, added on `chat.open` and removed on `chat.close` or when
the socket ends. Entries in both name their process, and count only while that process's key
`<prefix>:presence:process:<process>` lives: each process refreshes it every CHAT_PRESENCE_SECONDS / 3 while it
has sockets, so the entries of a process that died without a disconnect (SIGKILL) stop counting within
CHAT_PRESENCE_SECONDS, and go with their keys' expiry. One key per process: the load is per process, not socket.

Watchers learn of a change at once when a socket causes it (a hint on the layer, after which each re-reads), and
otherwise from the same timer: every beat a process re-reads every conversation its sockets watch (two Redis round
trips per process, however many sockets) and sends `chat.presence` to each socket whose view changed. Embedded
mode (no Redis) keeps both in memory: one process, nothing to expire.
"""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from redis.exceptions import RedisError

from notifications.groups import user_group
from notifications.user_limits import socket_registry, user_online_in_memory
from support.frames import chat_presence_frame
from support.groups import conversation_staff_group, customer_presence_group
from support.rules import sees_internal_notes

logger = logging.getLogger(__name__)

EXTENSION = "support.presence"  # its key in the socket's `extensions`
BEATS_PER_EXPIRY = 3  # refreshes (and re-reads) per CHAT_PRESENCE_SECONDS: a missed beat or two is no absence


class Presence(NamedTuple):
    customer_online: bool
    staff_viewing: bool


@dataclass
class Seen:
    """One conversation a socket watches, as presence knows it: whose it is, and what the socket was last sent."""

    customer_id: int
    staff: bool  # the socket is staff's: it counts as viewing
    sent: Presence
    read_at: float  # when the read behind `sent` started: an older read's answer never replaces it


class _Process:
    """This event loop's sockets (the beat runs while there are any), and the beat itself."""

    def __init__(self):
        self.sockets: dict = {}  # socket -> None, in the order they opened
        self.beat: asyncio.Task | None = None


_processes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Process]" = weakref.WeakKeyDictionary()
_memory_staff: dict[int, set[str]] = {}  # embedded mode: order id -> channel names of the staff sockets viewing it


def _process() -> _Process:
    return _processes.setdefault(asyncio.get_running_loop(), _Process())


def _seen(socket) -> dict[int, Seen]:
    return socket.extensions.setdefault(EXTENSION, {})


def _seen_by(socket) -> dict[int, Seen]:
    """A copy of what the socket watches (nothing once it ended): safe to go through across awaits."""
    return dict(socket.extensions.get(EXTENSION) or {})


def process_key(registry, process: str) -> str:
    """The key that lives as long as `process` beats: its entries count while it does."""
    return f"{registry.prefix}:presence:process:{process}"


def staff_viewing_key(registry, order_id: int) -> str:
    """The staff sockets viewing the conversation, "<process> <channel>", scored by when they began."""
    return f"{registry.prefix}:presence:order:{int(order_id)}:staff"


# --- Reading and writing Redis -------------------------------------------------------------


async def presence_read(conversations: dict[int, int], *, beat: bool = False) -> dict[int, Presence]:
    """The presence in each conversation (order id -> its customer's id); `beat` also refreshes this process's key."""
    registry = socket_registry()
    if registry is None:
        return {
            order_id: Presence(user_online_in_memory(customer_id), bool(_memory_staff.get(order_id)))
            for order_id, customer_id in conversations.items()
        }
    customers = sorted(set(conversations.values()))
    orders = sorted(conversations)
    async with registry.client.pipeline(transaction=False) as pipe:
        if beat:
            pipe.set(process_key(registry, registry.process), 1, px=int(settings.CHAT_PRESENCE_SECONDS * 1000))
        for customer_id in customers:
            pipe.zrange(registry.sockets_key(customer_id), 0, -1)
        for order_id in orders:
            pipe.zrange(staff_viewing_key(registry, order_id), 0, -1)
        replies = await pipe.execute()
    replies = replies[1:] if beat else replies
    processes = [{entry.decode().partition(" ")[0] for entry in reply} for reply in replies]
    alive = {registry.process}  # this one, which is reading
    others = sorted(set().union(*processes) - alive)
    if others:
        found = await registry.client.mget([process_key(registry, process) for process in others])
        alive.update(process for process, value in zip(others, found, strict=True) if value is not None)
    online = {customer_id: bool(found & alive) for customer_id, found in zip(customers, processes, strict=False)}
    viewing = {
        order_id: bool(found & alive) for order_id, found in zip(orders, processes[len(customers) :], strict=True)
    }
    return {
        order_id: Presence(online[customer_id], viewing[order_id]) for order_id, customer_id in conversations.items()
    }


async def _beat_now() -> None:
    """Refresh this process's key: its sockets' entries count for CHAT_PRESENCE_SECONDS more."""
    registry = socket_registry()
    if registry is not None:
        await registry.client.set(
            process_key(registry, registry.process), 1, px=int(settings.CHAT_PRESENCE_SECONDS * 1000)
        )


async def _staff_viewing_add(socket, order_id: int) -> None:
    registry = socket_registry()
    if registry is None:
        _memory_staff.setdefault(order_id, set()).add(socket.channel_name)
        return
    key, lifetime_ms = staff_viewing_key(registry, order_id), settings.WEBSOCKET_LIFETIME * 1000
    now_ms = int(time.time() * 1000)
    async with registry.client.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(key, "-inf", now_ms - lifetime_ms)  # left by processes long dead
        pipe.zadd(key, {registry.socket_entry(socket.channel_name): now_ms})
        pipe.pexpire(key, lifetime_ms)
        await pipe.execute()


async def _staff_viewing_remove(socket, order_ids: list[int]) -> None:
    registry = socket_registry()
    if registry is None:
        for order_id in order_ids:
            viewers = _memory_staff.get(order_id, set())
            viewers.discard(socket.channel_name)
            if not viewers:
                _memory_staff.pop(order_id, None)
        return
    async with registry.client.pipeline(transaction=False) as pipe:
        for order_id in order_ids:
            pipe.zrem(staff_viewing_key(registry, order_id), registry.socket_entry(socket.channel_name))
        await pipe.execute()


# --- What the socket's chat handlers call ---------------------------------------------------------------


async def conversation_watched(socket, *, order_id: int, customer_id: int) -> Presence:
    """The socket now shows the conversation (chat.open): count a staff socket as viewing, tell the others; its
    presence for `chat.opened`."""
    staff = sees_internal_notes(socket.user)
    if staff:
        await _staff_viewing_add(socket, order_id)
        await socket.group_join(customer_presence_group(customer_id))
    started = asyncio.get_running_loop().time()
    presence = (await presence_read({order_id: customer_id}))[order_id]
    if staff:
        await _hint_order(socket, order_id, customer_id)
    # Last, with no await before the caller sends `chat.opened`: no `chat.presence` of it can go out before that.
    _seen(socket)[order_id] = Seen(customer_id=customer_id, staff=staff, sent=presence, read_at=started)
    return presence


async def conversation_unwatched(socket, order_id: int) -> None:
    """The socket no longer shows the conversation (chat.close): a staff socket stops counting as viewing it."""
    seen = _seen(socket).pop(order_id, None)
    if seen is None or not seen.staff:
        return
    await _staff_viewing_remove(socket, [order_id])
    if not any(other.customer_id == seen.customer_id for other in _seen(socket).values()):
        await socket.group_leave(customer_presence_group(seen.customer_id))
    await _hint_order(socket, order_id, seen.customer_id)


async def _hint_order(socket, order_id: int, customer_id: int) -> None:
    """Tell both sides watching the conversation that its staff presence may have changed (each re-reads)."""
    hint = {"type": "chat.presence", "order": order_id, "sender": socket.channel_name}
    for group in (conversation_staff_group(order_id), user_group(customer_id)):
        await socket.channel_layer.group_send(group, hint)


async def _refresh(sockets, only=None, *, beat: bool = False) -> None:
    """Re-read the conversations the sockets watch (those `only` picks) and send each socket what changed for it.

    `beat`: this process's beat, which refreshes its key in the same round trip.
    """
    wanted = [(socket, order_id, seen) for socket in sockets for order_id, seen in _seen_by(socket).items()]
    wanted = [(socket, order_id, seen) for socket, order_id, seen in wanted if only is None or only(order_id, seen)]
    if not wanted and not beat:
        return
    started = asyncio.get_running_loop().time()
    presence = await presence_read({order_id: seen.customer_id for _, order_id, seen in wanted}, beat=beat)
    for socket, order_id, _ in wanted:
        try:
            await _apply(socket, order_id, presence[order_id], read_at=started)
        except Exception:  # a socket gone meanwhile must not keep the others from hearing
            if not beat:
                raise


async def _apply(socket, order_id: int, presence: Presence, *, read_at: float) -> None:
    seen = _seen_by(socket).get(order_id)
    if seen is None or read_at < seen.read_at or socket.closing:
        return  # no longer watched, closed, or a newer read already answered
    seen.read_at = read_at
    if presence != seen.sent:
        seen.sent = presence
        await socket.send_json(chat_presence_frame(order_id=order_id, **presence._asdict()))


# --- From the channel layer -------------------------------------------------------------------


async def presence_hinted(socket, event: dict) -> None:
    """Someone began or stopped viewing a conversation this socket may watch: re-read it."""
    if event.get("sender") != socket.channel_name:
        await _refresh([socket], only=lambda order_id, seen: order_id == event["order"])


async def customer_presence_hinted(socket, event: dict) -> None:
    """A socket of a customer whose conversations this (staff) socket watches opened or closed: re-read them."""
    await _refresh([socket], only=lambda order_id, seen: seen.customer_id == event["customer"])


# --- Each socket's opening and closing (notifications/socket_handlers.py) -------------------------


async def presence_socket_opened(socket) -> None:
    """A user's socket opened: this process beats while it has sockets, and staff watching the user hear of it."""
    process = _process()
    process.sockets[socket] = None
    if process.beat is None or process.beat.done():
        await _beat_now()  # before anyone reads this socket's entry
        process.beat = asyncio.get_running_loop().create_task(_beat(process))
    await socket.channel_layer.group_send(
        customer_presence_group(socket.user_id), {"type": "chat.presence.customer", "customer": socket.user_id}
    )


async def presence_socket_closed(socket) -> None:
    """A socket ended: it no longer views anything, and its user may be offline now; the beat stops with the last."""
    process = _process()
    process.sockets.pop(socket, None)
    if not process.sockets and process.beat is not None:
        process.beat.cancel()
        process.beat = None
    seen = socket.extensions.pop(EXTENSION, {}) if socket.extensions else {}
    viewed = {order_id: item.customer_id for order_id, item in seen.items() if item.staff}
    try:
        if viewed:
            await _staff_viewing_remove(socket, list(viewed))
            for order_id, customer_id in viewed.items():
                await _hint_order(socket, order_id, customer_id)
    finally:
        await socket.channel_layer.group_send(
            customer_presence_group(socket.user_id), {"type": "chat.presence.customer", "customer": socket.user_id}
        )


async def _beat(process: _Process) -> None:
    """Every CHAT_PRESENCE_SECONDS / 3: refresh this process's key, re-read what its sockets watch, send changes."""
    while True:
        await asyncio.sleep(settings.CHAT_PRESENCE_SECONDS / BEATS_PER_EXPIRY)
        try:
            await _refresh(list(process.sockets), beat=True)
        except (RedisError, OSError) as error:
            logger.warning("Presence beat failed (%s); trying again at the next", error)
        except Exception:
            logger.exception("Presence beat failed; trying again at the next")
