"""A socket that comes and goes leaves nothing in the web process for the garbage collector.

WEB_GC_THRESHOLDS makes full collections rare (tail latency at 10,000 sockets), so what only a collection frees
piles up under churn: the soak measured ~12 KB per socket that came and went (docs/operations.md, "Soak").
shop/web.py breaks the cycles daphne and autobahn leave; this counts what is left, in a real daphne process.
"""

import asyncio
import json
import time
from pathlib import Path

import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from tests.conftest import requires_postgres, requires_redis
from tests.live.servers import ROOT, live_db, server_env, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

SOCKETS = 200
PROBE = ROOT / "tests" / "live" / "gc_probe"  # its sitecustomize.py, loaded by the web process at start


async def wait_for_file(path: Path, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while not path.exists():
        assert time.monotonic() < end, f"{path.name} did not appear within {deadline}s"
        await asyncio.sleep(0.05)


async def test_sockets_that_come_and_go_leave_no_garbage_for_the_collector(
    django_db_setup, e2e_workdir, e2e_static_root, tmp_path, open_browser, customer
):
    env = server_env(
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        GC_PROBE_DIR=str(tmp_path),
        PYTHONPATH=f"{PROBE}:{ROOT}",
    )
    server = start_web_server("daphne-gc-probe", env, e2e_workdir, e2e_static_root)
    try:
        browser = await (await open_browser(server)).login(customer.username)
        headers = {"Cookie": f"sessionid={browser.session_id}"}

        async def come_and_go():
            async with connect(server.ws_url, origin=server.origin, additional_headers=headers) as socket:
                assert json.loads(await socket.recv())["type"] == "hello"

        await come_and_go()  # whatever the first socket sets up for good is not garbage
        (tmp_path / "start").touch()
        await wait_for_file(tmp_path / "started")
        for _ in range(SOCKETS):
            await come_and_go()
        (tmp_path / "stop").touch()
        await wait_for_file(tmp_path / "garbage.json")
        garbage = json.loads((tmp_path / "garbage.json").read_text())
    finally:
        server.process.stop()

    # Before the fix: about 67 objects per socket (daphne's request and channel, autobahn's protocol, twisted's
    # connection), each type about once per socket. A few strays (closures of the login, the logs) are not.
    assert max(garbage.values(), default=0) < SOCKETS // 4, sorted(garbage.items(), key=lambda kv: -kv[1])[:10]
