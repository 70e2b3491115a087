"""EVALUATION (issue 20): the RabbitMQ channel layer's broker stops for 10 seconds and comes back mid-stream.

As tests/faults/test_redis_restart.py, with the layer on a private RabbitMQ node (Redis stays up: broker, limits).
"""

import asyncio
import time
from collections import Counter

import pytest

from notifications.models import Notification
from shop.channel_layers import channel_layers_config
from tests.conftest import requires_postgres, requires_redis
from tests.faults.client import (
    ChangeStream,
    ResilientClient,
    clients_behind,
    delivery_figures,
    in_thread,
    seqs_by_user,
    wait_until,
    wait_until_async,
)
from tests.faults.conftest import LAYER_PREFIX, record
from tests.faults.test_redis_restart import (
    CHANGE_INTERVAL,
    OUTAGE,
    OUTAGE_AFTER,
    RECOVERY_DEADLINE,
    STEPS,
    shop_with_customers,
)
from tests.live.servers import live_db
from tests.rabbitmq_server import RabbitMQServer

pytestmark = [live_db, requires_postgres(), requires_redis()]


@pytest.fixture
def rabbitmq(tmp_path):
    server = RabbitMQServer(tmp_path / "rabbitmq").start()
    yield server
    server.stop()


@pytest.fixture
def rabbitmq_cluster(cluster, rabbitmq, private_redis, settings):
    """`cluster` whose processes (and this test process) use the private RabbitMQ node as their channel layer."""
    settings.CHANNEL_LAYER_BACKEND = "rabbitmq"
    settings.CHANNEL_LAYERS = channel_layers_config(
        private_redis.location, "rabbitmq", LAYER_PREFIX, rabbitmq_url=rabbitmq.url
    )
    cluster.env.update(CHANNEL_LAYER_BACKEND="rabbitmq", CHANNEL_LAYER_RABBITMQ_URL=rabbitmq.url)
    return cluster


async def test_rabbitmq_layer_restart_mid_stream_loses_nothing_and_duplicates_nothing(rabbitmq_cluster, rabbitmq):
    cluster = rabbitmq_cluster
    web = cluster.web()
    cluster.worker()
    cluster.beat()
    customers, orders, sessions = await in_thread(shop_with_customers)
    start_seqs = await in_thread(seqs_by_user)
    clients = {pk: ResilientClient([web], sessions[pk], last_seq=start_seqs[pk][-1]).start() for pk in sessions}
    await wait_until(lambda: all(c.connects for c in clients.values()), deadline=20)

    stream = ChangeStream([(order.pk, status) for status in STEPS for order in orders], interval=CHANGE_INTERVAL)
    stream.start()
    await asyncio.sleep(OUTAGE_AFTER)  # let the stream run on a healthy broker first
    await asyncio.to_thread(rabbitmq.stop)
    outage_started = time.monotonic()
    await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_started)))
    await asyncio.to_thread(rabbitmq.start)
    restarted = time.monotonic()
    await asyncio.to_thread(stream.join, 120)

    expected = await in_thread(seqs_by_user)

    def missing():
        return clients_behind(clients, expected, start_seqs)

    recovery = await wait_until(lambda: not missing(), deadline=RECOVERY_DEADLINE, describe=missing)
    unpublished = Notification.objects.filter(published_at=None)
    swept = await wait_until_async(lambda: in_thread(lambda: not unpublished.exists()), deadline=RECOVERY_DEADLINE)
    for client in clients.values():
        await client.stop()

    committed = sum(len(expected[pk]) - len(start_seqs[pk]) for pk in clients)
    figures = delivery_figures(clients.values(), committed=committed)
    record(
        "rabbitmq_layer_restart",
        clients=len(clients),
        changes_committed=stream.committed,
        **figures,
        handshake_failures=sum((c.handshake_failures for c in clients.values()), start=Counter()),
        outage_seconds=OUTAGE,
        seconds_from_broker_back_to_all_delivered=round(time.monotonic() - restarted, 2),
        seconds_until_the_sweeper_published_every_row=round(swept, 2),
    )
    assert stream.errors == []
    assert stream.committed == len(stream.plan)
    assert committed == figures["notifications_delivered"] == stream.committed
    assert recovery < RECOVERY_DEADLINE
    assert 1011 not in figures["close_codes"]
    web.process.check_running()
