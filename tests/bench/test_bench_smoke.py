"""The benchmark's scenarios at small scale against the e2e servers: everything arrives, once, to its owner.

`make bench` measures speed; this only proves the measuring code and the paths it drives
are correct (never a time), so a broken benchmark or a lossy fast path fails `make test`.
"""

import os
import uuid

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model

from bench import scenarios
from bench.data import customers_create, orders_reset
from bench.handshakes import connect_tickets
from bench.load import Generators, Triggers
from bench.run import LADDER
from bench.stack import SHOP_APPLICATION, WORKER_NICENESS
from tests.conftest import requires_postgres
from tests.live.servers import live_db, server_env, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

SOCKETS = 200


@pytest.fixture
def generators():
    with Generators(2) as generators:
        yield generators


@pytest.fixture
def triggers(stack):
    with Triggers(2, stack.env) as triggers:  # the servers' database and channel layer
        yield triggers


def test_storm_latency_and_burst_deliver_every_change_once_to_its_customer_only(stack, generators, triggers):
    customers = customers_create(SOCKETS, run="smoke")

    storm = scenarios.storm(generators, [stack.web], customers, concurrency=50)
    assert (storm["connected"], storm["failures"]) == (SOCKETS, {})
    assert 0 < storm["machine_cpu_busy"] <= 1
    assert generators.open_sockets() == SOCKETS

    # The triggers stand in for the Celery workers and run at their priority; the generators at the servers'.
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert {os.getpriority(os.PRIO_PROCESS, p.pid) for p in triggers.processes} == {min(19, ours + WORKER_NICENESS)}
    assert {os.getpriority(os.PRIO_PROCESS, p.pid) for p in generators.processes} == {ours}
    steady = scenarios.latency(generators, triggers, [stack.web], customers, rate=100, seconds=2)
    assert (steady["changes"], steady["trigger_processes"]) == (200, 2)
    assert steady["published"] == 200  # every change's publish reached Redis, and its time was taken
    assert 0 <= steady["server_cpu_wait_share"][0] < 1
    assert (steady["received"], steady["lost"], steady["duplicates"], steady["foreign_frames"]) == (200, 0, 0, 0)
    assert (steady["acks_sent"], steady["recorded_delivered"]) == (0, 0)  # nobody acknowledged
    assert steady["server_loop_stalls"][0]["probes"] > 0  # the web process's loop-lag probe was read, not judged

    # Back to back, without then with every client acknowledging: each ack is recorded, and its CPU counted.
    receipts = scenarios.ack_cost(generators, triggers, [stack.web], customers, rate=100, seconds=2)
    assert (receipts["received_with_acks"], receipts["lost"]) == (200, 0)
    assert receipts["acks_sent"] == receipts["recorded_delivered"] == 200  # one notification per customer
    assert receipts["plain_server_cpu_ms_per_notification"] > 0
    assert receipts["acked_server_cpu_ms_per_notification"] > 0
    assert receipts["overhead"] is not None

    orders_reset([customer.order_id for customer in customers])
    burst = scenarios.burst(generators, customers, size=SOCKETS)
    assert (burst["received"], burst["lost"], burst["duplicates"], burst["foreign_frames"]) == (SOCKETS, 0, 0, 0)
    assert generators.open_sockets() == SOCKETS  # nobody was dropped along the way


@pytest.mark.parametrize(
    ("rung", "app"), [(rung, app) for rung, app, _ in LADDER if app != SHOP_APPLICATION], ids=lambda value: value
)
def test_every_stripped_down_rung_of_the_ladder_serves_every_socket(
    rung, app, generators, e2e_workdir, e2e_static_root
):
    customers = customers_create(SOCKETS, run=f"ladder-{rung}")
    prefix = f"ladder-{rung}-{uuid.uuid4().hex[:8]}"  # this server's channels alone
    env = server_env(REDIS_URL=settings.REDIS_URL, CHANNEL_LAYER_PREFIX=prefix)
    web = start_web_server(f"ladder-{rung}", env, e2e_workdir, e2e_static_root, app=app)
    try:
        storm = scenarios.storm(generators, [web], customers, concurrency=50)
        assert (storm["connected"], storm["failures"]) == (SOCKETS, {})
        assert storm["server_cpu_ms_per_handshake"] > 0
        assert generators.open_sockets() == SOCKETS
        _, not_greeted_by_id = generators.collect()
        # Only a rung that looks the session up can greet each client by its own user id.
        assert len(not_greeted_by_id) == (0 if rung == "auth" else SOCKETS)
        # A Channels consumer subscribes a channel of its own per socket; the bare application none.
        subscribed = redis.Redis.from_url(settings.REDIS_URL).pubsub_channels(f"{prefix}specific.*")
        assert len(subscribed) == (0 if rung == "bare" else SOCKETS)
    finally:
        web.process.stop()


def test_a_storm_with_the_pages_connect_tickets_opens_each_socket_by_its_ticket(stack, generators):
    customers = customers_create(40, run="tickets")
    tickets = connect_tickets(customers)
    # Deactivated after minting: by its ticket a socket is refused with 4403; by the cookie alone it would be 4401.
    get_user_model().objects.filter(pk__in=[c.user_id for c in customers[:10]]).update(is_active=False)

    storm = scenarios.storm(generators, [stack.web], customers, concurrency=20, tickets=tickets)

    assert (storm["connected"], storm["failures"]) == (30, {"closed_4403": 10})
