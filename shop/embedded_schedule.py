"""Embedded mode's beat: the web process runs the beat schedule's periodic tasks itself (no REDIS_URL, so no beat).

In the web process, not a process beside it, because what these tasks change must reach the live pages, and
embedded mode's in-memory channel layer exists only there. Each task runs in a thread (its code is sync) on its
beat interval, one run at a time; one that fails is logged and runs again at its next turn. The offline fallback
(`deliver-notifications`) is the one entry left out: it has a loop of its own beside the web process
(Procfile.embedded), as sending an email may wait on a mail server.
"""

import asyncio
import logging

from celery.utils.imports import symbol_by_name
from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)

# Run beside the web process instead (Procfile.embedded's `deliver` line).
RUN_ELSEWHERE = frozenset({"deliver-notifications"})


def embedded_schedule() -> dict[str, tuple[str, float]]:
    """The beat entries this process runs in embedded mode: name -> (task name, seconds between runs)."""
    return {
        name: (entry["task"], float(entry["schedule"]))
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if name not in RUN_ELSEWHERE
    }


def embedded_schedule_start() -> list[asyncio.Task]:
    """On the server's event loop, one task per entry; nothing outside embedded mode (beat runs them there).

    Called as the reactor starts (shop/web.py), just before the loop runs: daphne has made it the current one.
    """
    if settings.REDIS:
        return []
    loop = asyncio.get_event_loop()
    # Beat names each task by its module path, which the web process has not imported yet.
    tasks = {name: (symbol_by_name(task), seconds) for name, (task, seconds) in embedded_schedule().items()}
    return [loop.create_task(_every(name, task, seconds)) for name, (task, seconds) in tasks.items()]


async def _every(name: str, task, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            # In a thread of its own, as a worker would run it; never in the thread the requests' sync code shares.
            await database_sync_to_async(task.apply, thread_sensitive=False)(throw=True)
        except Exception:
            logger.exception("Periodic task %s failed; it runs again in %.0f s", name, seconds)
