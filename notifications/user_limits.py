"""Limits per user that hold across web processes: sockets open at once, and messages sent.

A per-socket limit alone lets one account multiply itself: every socket of a user hears every
`unread` frame, so many sockets each within their own limit sent tens of thousands of frames
(docs/reliability.md, probe row 4). With Redis (the full stack) the counts live there, shared by
every web process; embedded mode has one process and no Redis, so they live in its memory.
"""

import asyncio
import uuid
import weakref
from collections import deque
from functools import lru_cache

import redis.asyncio as redis
from django.conf import settings
from limits import parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shop.redis_config import redis_host, redis_pool

# A user's sockets, oldest first, in one sorted set (score: connect time in ms, from Redis's clock so
# every process agrees). One script: trims entries older than a socket can live, adds the new one,
# and pops the oldest beyond the cap, never the new one, atomically for all processes.
_REGISTER_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lifetime_ms = tonumber(ARGV[3]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - lifetime_ms)
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lifetime_ms)
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then return {} end
local evicted = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess)) do
  if member ~= ARGV[1] and #evicted < excess then table.insert(evicted, member) end
end
redis.call('ZREM', KEYS[1], unpack(evicted))
return evicted
"""


class _RedisLimits:
    """This event loop's Redis client (a redis.asyncio connection belongs to the loop that made it)."""

    def __init__(self, host: dict, prefix: str):
        self.prefix = prefix
        # Names this process (this event loop) in its sockets' entries, so readers can tell whose they are: an app
        # that must know which are still alive keeps a key per process that dies with it (support/presence.py).
        self.process = uuid.uuid4().hex
        pool = redis_pool(host, socket_connect_timeout=5, socket_timeout=5)
        self.client = redis.Redis(connection_pool=pool)
        self.register = self.client.register_script(_REGISTER_SCRIPT)
        # The pool decides where limits connects (the URL or the Sentinel's primary); the URI only picks redis-py.
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=f"{prefix}:limits", connection_pool=pool
        )
        self.rate_limiter = MovingWindowRateLimiter(storage)

    def sockets_key(self, user_id: int) -> str:
        return f"{self.prefix}:sockets:user:{user_id}"

    def socket_entry(self, channel_name: str) -> str:
        """A socket's member in its user's set: "<process> <channel name>" (a channel name has no spaces)."""
        return f"{self.process} {channel_name}"


_redis_limits: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RedisLimits]" = weakref.WeakKeyDictionary()
# Embedded mode: this process's sockets per user (channel name -> nothing, oldest first) and its limiter.
_memory_sockets: dict[int, dict[str, None]] = {}
_memory_rate_limiter = MovingWindowRateLimiter(MemoryStorage())


def socket_registry() -> _RedisLimits | None:
    """This event loop's Redis client, key prefix and process name for the users' sockets (None: embedded mode)."""
    if not settings.REDIS:
        return None
    loop = asyncio.get_running_loop()
    limits = _redis_limits.get(loop)
    if limits is None:
        prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "shop")
        limits = _redis_limits[loop] = _RedisLimits(redis_host(settings.REDIS), prefix)
    return limits


async def user_socket_register(*, user_id: int, channel_name: str) -> list[str]:
    """Count a new socket of the user; the channel names of their oldest sockets beyond the cap, to be closed."""
    cap = settings.NOTIFICATION_SOCKETS_PER_USER
    limits = socket_registry()
    if limits is None:
        sockets = _memory_sockets.setdefault(user_id, {})
        sockets[channel_name] = None
        evicted = list(sockets)[: max(0, len(sockets) - cap)]  # the new socket is the newest: never among them
        for name in evicted:
            del sockets[name]
        return evicted
    evicted = await limits.register(
        keys=[limits.sockets_key(user_id)], args=[limits.socket_entry(channel_name), cap, settings.WEBSOCKET_LIFETIME]
    )
    return [entry.decode().rpartition(" ")[2] for entry in evicted]  # an entry of before the process names: itself


async def user_socket_unregister(*, user_id: int, channel_name: str) -> None:
    """Stop counting a socket that closed."""
    limits = socket_registry()
    if limits is None:
        sockets = _memory_sockets.get(user_id, {})
        sockets.pop(channel_name, None)
        if not sockets:
            _memory_sockets.pop(user_id, None)
        return
    await limits.client.zrem(limits.sockets_key(user_id), limits.socket_entry(channel_name))


def user_online_in_memory(user_id: int) -> bool:
    """Embedded mode: whether the user has a socket open (on this, the one process)."""
    return bool(_memory_sockets.get(user_id))


@lru_cache(maxsize=4)
def rate_limits(spec: str) -> tuple:
    """The limits in `spec`, parsed once and shared by every socket (docs/performance.md, appendix A)."""
    return tuple(parse_many(spec))


async def user_message_allow(*, user_id: int) -> bool:
    """Count one message from any socket of the user; False once they are over NOTIFICATION_USER_RATE_LIMIT."""
    return await user_rate_allow(name="user", user_id=user_id, spec=settings.NOTIFICATION_USER_RATE_LIMIT)


async def user_rate_allow(*, name: str, user_id: int, spec: str) -> bool:
    """Count one `name` action of the user, from any socket on any process; False once over the limits in `spec`.

    Each name counts on its own: an app's limit on one kind of message (chat's `chat.send`) beside the socket's.
    """
    limits = socket_registry()
    rate_limiter = _memory_rate_limiter if limits is None else limits.rate_limiter
    for limit in rate_limits(spec):
        if not await rate_limiter.hit(limit, name, str(user_id)):
            return False
    return True


class SocketWindows:
    """One socket's own moving windows, one per limit: the times of its recent messages, in its memory.

    Not limits' MemoryStorage shared by the process's sockets: every hit there starts a pass over the keys
    of every socket that sent anything within its window, each key through a thread (limits 5.8), so one
    message cost about 40 µs per such socket: 12 ms at 300 (docs/performance.md, "Delivery receipts").
    """

    def __init__(self, limits: tuple):
        self.windows = [(limit.amount, limit.get_expiry(), deque()) for limit in limits]

    def hit(self, now: float) -> bool:
        """Count one message at `now` (monotonic seconds); False, and not counted, if over any limit."""
        for amount, seconds, times in self.windows:
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) >= amount:
                return False
        for _, _, times in self.windows:
            times.append(now)
        return True
