"""One long-lived event loop per worker process, for the group sends of its sync code.

From a thread with no event loop above it (a Celery task), `async_to_sync` starts a thread and an
event loop for each call. The channel layer keeps its Redis connections per event loop, so it opens a
new connection on that loop, sends, and closes it, for every change a worker publishes (what that costs:
docs/performance.md, appendix A). A worker process instead sends on one loop of its own,
in a daemon thread started on first use, where the layer's connection lives as long as the process.

Only processes that ask for it get one (`publishing_loop_enable`: the Celery worker, celery_app.py).
The web process needs none: its sync code runs in threads under the server's event loop, where
`async_to_sync` already sends over the server's long-lived connection. And it must have none in
embedded mode: the in-memory layer's queues belong to the server's loop and are not thread-safe.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asgiref.sync import async_to_sync

T = TypeVar("T")

LOOP_GRACE = 5.0  # seconds past a send's own deadline before the caller stops waiting for the loop

_enabled = False
_loop: tuple[asyncio.AbstractEventLoop, threading.Thread] | None = None  # the loop, and the thread running it
_loop_lock = threading.Lock()


def publishing_loop_enable() -> None:
    """From now on this process (and any it forks) sends from a long-lived loop of its own."""
    global _enabled
    _enabled = True


def run_until_sent(send: Callable[..., Awaitable[T]], /, *args, timeout: float) -> T:
    """Run `send(*args)` from sync code to the end: on this process's publishing loop, or else with `async_to_sync`.

    A send still running after `timeout` seconds (Redis unreachable but not refusing, or a connection cut
    without a word) is cancelled and raises TimeoutError, so it can neither hold a worker or a request
    nor keep the layer's connection busy for the sends after it, nor outlive the claim on the rows it
    sends (services.py); the callers leave the notifications to the sweeper. On the loop the deadline is
    the loop's own, so it holds whatever interrupts the caller meanwhile (a task's time limit, a signal).
    """
    if not _enabled:
        return async_to_sync(_until_deadline)(send, args, timeout)
    future = asyncio.run_coroutine_threadsafe(_until_deadline(send, args, timeout), _publishing_loop())
    try:
        return future.result(timeout + LOOP_GRACE)  # only a loop that stopped running gets this far
    finally:
        if not future.done():
            future.cancel()


async def _until_deadline(send: Callable[..., Awaitable[T]], args: tuple, timeout: float) -> T:
    return await asyncio.wait_for(send(*args), timeout)


def _publishing_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        # A forked child (a Celery pool process) inherits the parent's loop but not the thread running it, which
        # Python marks stopped there: the child starts its own, as after a loop thread that died.
        if _loop is None or not _loop[1].is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="notifications-publishing", daemon=True)
            thread.start()
            _loop = (loop, thread)
        return _loop[0]
