"""One long-lived event loop per worker process, for the group sends of its sync code.

From a thread with no event loop above it (a Celery task), `async_to_sync` starts a thread and an
event loop for each call. The channel layer keeps its Redis connections per event loop, so it opens a
new connection on that loop, sends, and closes it: for every change a worker publishes, ~1 ms of CPU
on a fast box and 2-2.5 ms on a slow one before Redis has the message, and a socket left in
TIME_WAIT for a minute (docs/performance.md). A worker process instead sends on one loop of its own,
in a daemon thread started on first use, where the layer's connection lives as long as the process.

Only processes that ask for it get one (`publishing_loop_enable`: the Celery worker, celery_app.py).
The web process needs none: its sync code runs in threads under the server's event loop, where
`async_to_sync` already sends over the server's long-lived connection. And it must have none in
embedded mode: the in-memory layer's queues belong to the server's loop and are not thread-safe.
"""

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asgiref.sync import async_to_sync
from django.conf import settings

T = TypeVar("T")

_enabled = False
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None  # (the pid it belongs to, the loop)
_loop_lock = threading.Lock()


def publishing_loop_enable() -> None:
    """From now on this process (and any it forks) sends from a long-lived loop of its own."""
    global _enabled
    _enabled = True


def run_until_sent(send: Callable[..., Awaitable[T]], /, *args) -> T:
    """Run `send(*args)` from sync code to the end: on this process's publishing loop, or else with `async_to_sync`.

    On the loop, a send that has not finished after NOTIFICATION_PUBLISH_TIMEOUT seconds (Redis
    unreachable but not refusing) is cancelled and raises TimeoutError, so a hung Redis cannot
    hold a worker forever; the callers leave the notifications to the sweeper.
    """
    if not _enabled:
        return async_to_sync(send)(*args)
    future = asyncio.run_coroutine_threadsafe(send(*args), _publishing_loop())
    try:
        return future.result(timeout=settings.NOTIFICATION_PUBLISH_TIMEOUT)
    except TimeoutError:
        future.cancel()
        raise


def _publishing_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        # A forked child (a Celery pool process) inherits the parent's loop but not its thread: it starts its own.
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="notifications-publishing", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]
