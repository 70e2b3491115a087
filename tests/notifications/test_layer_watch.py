"""The per-process layer watch: it must stop whenever its event loop cancels it."""

import asyncio
import os
import random

from notifications import layer_watch

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_the_watch_stops_when_cancelled_even_in_the_middle_of_a_redis_command(settings):
    # Polling every 0.5 ms makes most cancellations land inside `INFO`, where redis-py used to turn
    # them into a connection error; the watch then looped forever and held up its loop's shutdown.
    settings.CHANNEL_LAYER_WATCH_INTERVAL = 0.0005
    rng = random.Random(1234)
    for _ in range(100):
        watch = asyncio.create_task(layer_watch._watch({"address": REDIS_URL}))
        await asyncio.sleep(rng.uniform(0.001, 0.02))
        watch.cancel()
        async with asyncio.timeout(2):
            await asyncio.wait({watch})
        assert watch.cancelled()
