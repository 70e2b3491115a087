"""Watches the channel layer's Redis for this process: lost or restarted means every socket reconnects.

Redis keeps group memberships in memory only. After a restart a socket would stay open
but never hear from its groups again, and during an outage it cannot be told about
anything. So one task per process pings Redis; when it stops answering, or answers
with a new run id (a restart), this process's sockets are closed with 4012. Each
page reconnects with backoff and resumes with ?after=<seq>, which replays from the
database everything it missed.

On the pub/sub layer (the default) there is a second way to miss messages: Redis
delivers a PUBLISH only to connections subscribed at that moment, so whatever was
published while this process's subscriber connection was down and reconnecting (a
network blip, Redis dropping a subscriber whose output buffer overflowed) is gone,
though Redis itself never went away. Every reconnect of that connection closes this
process's sockets with 4012 too, so their pages resume from the database.
"""

import asyncio
import logging
import weakref

import redis.asyncio as redis
from django.conf import settings

from shop.redis_config import redis_pool

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 4012  # 4000 + 1012, service restart (see consumers.py)

_sockets: "weakref.WeakSet" = weakref.WeakSet()
_watcher: asyncio.Task | None = None


def watch(consumer) -> None:
    """Close `consumer` (with 4012) if the layer's Redis is lost or restarts while it is open.

    Call it once the consumer has joined its groups (so a pub/sub layer has its subscriber connection).
    """
    _sockets.add(consumer)
    _ensure_watching()
    _watch_subscriber_reconnects(consumer.channel_layer)


def unwatch(consumer) -> None:
    _sockets.discard(consumer)


def _ensure_watching() -> None:
    global _watcher
    loop = asyncio.get_running_loop()
    if _watcher is not None and not _watcher.done() and _watcher.get_loop() is loop:
        return
    hosts = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts")
    if not hosts:
        return  # the in-memory layer lives and dies with this process: nothing to watch
    _watcher = loop.create_task(_watch(hosts[0]))


async def _watch(host: dict) -> None:
    # A client of its own: fail fast, no retries, so an outage is noticed within a second or two.
    # It lives as long as the process (or the event loop): when that ends it is simply cancelled,
    # with nothing to await on the way out, so it can never hold up a loop's shutdown.
    # Under Sentinel it asks for the primary on each connect: a failover is a new run id, like a restart.
    client = redis.Redis.from_pool(redis_pool(host, socket_connect_timeout=1, socket_timeout=2, retry=None))
    known_run_id = None
    while True:
        try:
            run_id = (await client.info("server"))["run_id"]
        except (redis.RedisError, OSError):
            run_id = None
        # redis-py can turn a cancellation that lands mid-command into a connection error
        # (or swallow it); without this check the loop would ignore it and hold up the loop's shutdown.
        if asyncio.current_task().cancelling():
            raise asyncio.CancelledError
        if run_id != known_run_id:
            if known_run_id is not None:
                await _close_all("lost" if run_id is None else "restarted")
            known_run_id = run_id
        await asyncio.sleep(settings.CHANNEL_LAYER_WATCH_INTERVAL)


class _SubscriberReconnects:
    """The connect callback for pub/sub subscriber connections (redis-py keeps it by weak reference)."""

    def on_connect(self, connection) -> None:
        # Registered only once the connection was up, so every call is a reconnect. Closing runs in
        # a task of its own: this is called inside redis-py's connect, before it resubscribes.
        asyncio.get_running_loop().create_task(_close_all("subscriber connection reconnected"))


_subscriber_reconnects = _SubscriberReconnects()


def _watch_subscriber_reconnects(layer) -> None:
    # channels_redis's RedisPubSubChannelLayer: one RedisPubSubLoopLayer per event loop, one subscriber connection
    # per shard. Private attributes of the versions shop/internals.py pins and checks at start-up, guarded by
    # tests/faults/test_subscriber_reconnect.py; the core layer (no such connection) is left alone.
    loop_layer = getattr(layer, "_layers", {}).get(asyncio.get_running_loop())
    for shard in getattr(loop_layer, "_shards", ()):
        connection = shard._pubsub.connection if shard._pubsub is not None else None
        if connection is not None:
            connection.register_connect_callback(_subscriber_reconnects.on_connect)  # once: it ignores repeats


async def _close_all(what: str) -> None:
    sockets = list(_sockets)
    logger.warning("Channel layer Redis %s: closing %d socket(s) with %d", what, len(sockets), CLOSE_SERVICE_RESTART)
    for consumer in sockets:
        _sockets.discard(consumer)
        try:
            await consumer.close(code=CLOSE_SERVICE_RESTART)
        except Exception:  # a socket already gone needs no closing
            pass
