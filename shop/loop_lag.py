"""What holds the web process's event loop: its lag, and the garbage collector's pauses (docs/operations.md, "Metrics").

Every socket of a web process is served by one event loop, so anything that holds the loop (a sweep over every
connection, a collection over many objects) holds every frame meanwhile. The probe sleeps `PROBE_INTERVAL` again and
again: a stall of S seconds shows as a lag between S − PROBE_INTERVAL and S in `shop_event_loop_lag_seconds`.
Each collection's duration goes to `shop_gc_pause_seconds`, by generation, which tells a collection from the rest.
"""

import asyncio
import gc
import time
import weakref

PROBE_INTERVAL = 0.01  # seconds: fine enough to bound a 30 ms stall; its cost is in docs/operations.md, "Metrics"

_probes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


def loop_lag_probe_start() -> asyncio.Task:
    """Start the probe on this thread's event loop, once: a second call returns the probe already running.

    Called as the reactor starts (shop/web.py), just before the loop runs: daphne has made it the current one.
    """
    loop = asyncio.get_event_loop()
    probe = _probes.get(loop)
    if probe is None or probe.done():
        probe = _probes[loop] = loop.create_task(loop_lag_probe(), name="event-loop-lag-probe")
    return probe


async def loop_lag_probe(interval: float = PROBE_INTERVAL) -> None:
    """Sleep `interval` again and again, observing each time how much later than due the loop woke it."""
    # Imported here: shop.web imports this module before daphne has loaded the application, so Django's apps.
    from notifications.metrics import event_loop_lag

    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        event_loop_lag.observe(max(0.0, loop.time() - due))


class _GcPauses:
    """A `gc.callbacks` entry timing each collection: two clock reads and an observation per collection."""

    def __init__(self):
        from notifications.metrics import gc_pause

        self.by_generation = [gc_pause.labels(generation=str(generation)) for generation in range(3)]
        self.started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].observe(time.perf_counter() - self.started)


def gc_pauses_observe() -> None:
    """Time every garbage collection of this process into `shop_gc_pause_seconds`, once however often called."""
    if not any(isinstance(callback, _GcPauses) for callback in gc.callbacks):
        gc.callbacks.append(_GcPauses())
