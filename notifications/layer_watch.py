"""Watches the channel layer's Redis for this process: lost or restarted means its sockets reconnect.

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

A layer sharded over several Redis servers (CHANNEL_LAYER_REDIS_URLS) is watched shard
by shard, and what happens to one shard closes only the sockets that hear through it:
those whose groups it holds, and on the core layer every socket of a process whose
inbox it holds (docs/operations.md, "Sharding the channel layer").
"""

import asyncio
import logging
import weakref

import redis.asyncio as redis
from django.conf import settings

from shop.redis_config import redis_pool

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 4012  # 4000 + 1012, service restart (see consumers.py)

# Each watched socket -> the indexes of the shards it hears through.
_sockets: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_watchers: list[asyncio.Task] = []


def watch(consumer, *, groups: list[str]) -> None:
    """Close `consumer` (with 4012) if a shard of the layer it hears through is lost or restarts while it is open.

    Call it once the consumer has joined `groups` (so a pub/sub layer has its subscriber connections).
    """
    _sockets[consumer] = socket_shards(consumer.channel_layer, channel_name=consumer.channel_name, groups=groups)
    _ensure_watching()
    _watch_subscriber_reconnects(consumer.channel_layer)


def unwatch(consumer) -> None:
    _sockets.pop(consumer, None)


def socket_shards(layer, *, channel_name: str, groups: list[str]) -> frozenset[int]:
    """The indexes of the layer's shards a socket in `groups` hears through (one shard: always {0}).

    Chosen as channels_redis chooses them: the pub/sub layer by each group's channel name; the core layer by
    each group's name, and by this process's inbox, through which it receives every group's messages.
    """
    if hasattr(layer, "consistent_hash"):  # the core layer
        return frozenset(layer.consistent_hash(name) for name in [*groups, channel_name])
    loop_layer = getattr(layer, "_layers", {}).get(asyncio.get_running_loop())
    if hasattr(loop_layer, "_shards"):  # the pub/sub layer (the socket's own channel carries no notifications)
        shards = loop_layer._shards
        return frozenset(shards.index(loop_layer._get_shard(loop_layer._get_group_channel_name(g))) for g in groups)
    return frozenset({0})  # the in-memory layer: one "shard", this process


def _ensure_watching() -> None:
    loop = asyncio.get_running_loop()
    if _watchers and all(not watcher.done() and watcher.get_loop() is loop for watcher in _watchers):
        return
    hosts = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts")
    if not hosts:
        return  # the in-memory layer lives and dies with this process: nothing to watch
    for watcher in _watchers:
        if watcher.get_loop() is loop:
            watcher.cancel()  # one of them ended: start them all again, one per shard
    _watchers[:] = [loop.create_task(_watch(host, shard=index)) for index, host in enumerate(hosts)]


async def _watch(host: dict, *, shard: int = 0) -> None:
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
                await _close_hearing(shard, "lost" if run_id is None else "restarted")
            known_run_id = run_id
        await asyncio.sleep(settings.CHANNEL_LAYER_WATCH_INTERVAL)


class _SubscriberReconnects:
    """The connect callback for one shard's pub/sub subscriber connection (redis-py keeps it by weak reference)."""

    def __init__(self, shard: int):
        self.shard = shard

    def on_connect(self, connection) -> None:
        # Registered only once the connection was up, so every call is a reconnect. Closing runs in
        # a task of its own: this is called inside redis-py's connect, before it resubscribes.
        asyncio.get_running_loop().create_task(_close_hearing(self.shard, "subscriber connection reconnected"))


_subscriber_reconnects: dict[int, _SubscriberReconnects] = {}  # by shard index: the strong references


def _watch_subscriber_reconnects(layer) -> None:
    # channels_redis's RedisPubSubChannelLayer: one RedisPubSubLoopLayer per event loop, one subscriber connection
    # per shard. Private attributes of the versions shop/internals.py pins and checks at start-up, guarded by
    # tests/faults/test_subscriber_reconnect.py; the core layer (no such connection) is left alone.
    loop_layer = getattr(layer, "_layers", {}).get(asyncio.get_running_loop())
    for index, shard in enumerate(getattr(loop_layer, "_shards", ())):
        connection = shard._pubsub.connection if shard._pubsub is not None else None
        if connection is not None:
            callback = _subscriber_reconnects.setdefault(index, _SubscriberReconnects(index)).on_connect
            connection.register_connect_callback(callback)  # once: it ignores repeats


async def _close_hearing(shard: int, what: str) -> None:
    """Close (4012) every watched socket that hears through `shard`, which was lost, restarted or reconnected."""
    sockets = [consumer for consumer, shards in list(_sockets.items()) if shard in shards]
    logger.warning(
        "Channel layer Redis %s (shard %d): closing %d socket(s) with %d", what, shard, len(sockets),
        CLOSE_SERVICE_RESTART,
    )  # fmt: skip
    for consumer in sockets:
        _sockets.pop(consumer, None)
        try:
            await consumer.close(code=CLOSE_SERVICE_RESTART)
        except Exception:  # a socket already gone needs no closing
            pass
