"""Watches the channel layer's Redis for this process: lost or restarted means every socket reconnects.

Redis keeps group memberships in memory only. After a restart a socket would stay open
but never hear from its groups again, and during an outage it cannot be told about
anything. So one task per process pings Redis; when it stops answering, or answers
with a new run id (a restart), this process's sockets are closed with 4012. Each
page reconnects with backoff and resumes with ?after=<seq>, which replays from the
database everything it missed.
"""

import asyncio
import logging
import weakref

import redis.asyncio as redis
from django.conf import settings

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 4012  # 4000 + 1012, service restart (see consumers.py)

_sockets: "weakref.WeakSet" = weakref.WeakSet()
_watcher: asyncio.Task | None = None


def watch(consumer) -> None:
    """Close `consumer` (with 4012) if the layer's Redis is lost or restarts while it is open."""
    _sockets.add(consumer)
    _ensure_watching()


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
    _watcher = loop.create_task(_watch(hosts[0]["address"]))


async def _watch(address: str) -> None:
    # A client of its own: fail fast, no retries, so an outage is noticed within a second or two.
    # It lives as long as the process (or the event loop): when that ends it is simply cancelled,
    # with nothing to await on the way out, so it can never hold up a loop's shutdown.
    client = redis.Redis.from_url(address, socket_connect_timeout=1, socket_timeout=2, retry=None)
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


async def _close_all(what: str) -> None:
    sockets = list(_sockets)
    logger.warning("Channel layer Redis %s: closing %d socket(s) with %d", what, len(sockets), CLOSE_SERVICE_RESTART)
    for consumer in sockets:
        _sockets.discard(consumer)
        try:
            await consumer.close(code=CLOSE_SERVICE_RESTART)
        except Exception:  # noqa: BLE001 - a socket already gone needs no closing
            pass
