"""What holds the web process's event loop (shop/loop_lag.py): its lag, and the garbage collector's pauses."""

import asyncio
import gc
import time

import pytest

from notifications.metrics import event_loop_lag, gc_pause
from shop import loop_lag

DEADLINE = 10.0  # seconds a test waits for the probe to have woken up


def histogram() -> dict[str, float]:
    """The histogram's samples so far, by bucket bound ("0.03", "+Inf") and "count"."""
    samples = {}
    for sample in event_loop_lag.collect()[0].samples:
        if sample.name.endswith("_bucket"):
            samples[sample.labels["le"]] = sample.value
        elif sample.name.endswith("_count"):
            samples["count"] = sample.value
    return samples


async def until(condition) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not true within {DEADLINE}s")
        await asyncio.sleep(0.01)


async def test_the_probe_observes_each_wake_up_of_the_loop():
    before = histogram()["count"]
    probe = asyncio.create_task(loop_lag.loop_lag_probe())
    try:
        await until(lambda: histogram()["count"] >= before + 3)
    finally:
        probe.cancel()


async def test_a_callback_holding_the_loop_shows_as_a_stall_over_30_ms():
    started = histogram()["count"]
    probe = asyncio.create_task(loop_lag.loop_lag_probe())
    try:
        await until(lambda: histogram()["count"] > started)  # so it is asleep on its timer now
        before = histogram()
        time.sleep(0.06)  # the stall itself: this holds the loop, as a slow callback would
        await until(lambda: histogram()["count"] > before["count"])
    finally:
        probe.cancel()
    after = histogram()
    stalls = (after["+Inf"] - after["0.03"]) - (before["+Inf"] - before["0.03"])
    assert stalls >= 1  # its timer was due within 10 ms of the stall's start and ran 60 ms after it: over 30 ms late


def test_the_probe_starts_once_per_event_loop():
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        first = loop_lag.loop_lag_probe_start()
        assert loop_lag.loop_lag_probe_start() is first
        first.cancel()
        loop.run_until_complete(asyncio.gather(first, return_exceptions=True))
        assert loop_lag.loop_lag_probe_start() is not first  # one that ended is started again
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


def gc_pauses(generation: str) -> float:
    """How many collections of `generation` the histogram has counted so far."""
    return next(
        sample.value
        for sample in gc_pause.collect()[0].samples
        if sample.name.endswith("_count") and sample.labels["generation"] == generation
    )


def test_every_garbage_collection_is_timed_by_its_generation_once_however_often_started():
    loop_lag.gc_pauses_observe()
    loop_lag.gc_pauses_observe()
    before = {generation: gc_pauses(generation) for generation in ("0", "1", "2")}

    gc.collect(1)
    gc.collect()

    assert sum(isinstance(callback, loop_lag._GcPauses) for callback in gc.callbacks) == 1
    assert gc_pauses("1") == before["1"] + 1
    assert gc_pauses("2") == before["2"] + 1
