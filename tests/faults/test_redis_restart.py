"""Fault 1: Redis stops for 10 seconds and comes back while customers watch and orders keep changing."""

import asyncio
import time
from collections import Counter

import httpx
from django.db import connections

from notifications.models import Notification
from orders.models import OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import (
    ChangeStream,
    ResilientClient,
    clients_behind,
    delivery_figures,
    in_thread,
    seqs_by_user,
    sessions_for,
    wait_until,
    wait_until_async,
)
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

CUSTOMERS = 12
ORDERS_EACH = 4
STEPS = [OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
CHANGE_INTERVAL = 0.08  # about 12 status changes a second
OUTAGE_AFTER = 2.0
OUTAGE = 10.0
RECOVERY_DEADLINE = 60.0


def shop_with_customers():
    """Customers with paid orders, and a real session cookie for each."""
    customers = [UserFactory() for _ in range(CUSTOMERS)]
    orders = [
        place_order(customer=customer, status=OrderStatus.PAID) for customer in customers for _ in range(ORDERS_EACH)
    ]
    sessions = sessions_for(customers)
    connections.close_all()
    return customers, orders, sessions


async def test_redis_restart_mid_stream_loses_nothing_and_duplicates_nothing(cluster, private_redis):
    web = cluster.web()
    cluster.worker()
    cluster.beat()
    customers, orders, sessions = await in_thread(shop_with_customers)
    start_seqs = await in_thread(seqs_by_user)
    clients = {pk: ResilientClient([web], sessions[pk], last_seq=start_seqs[pk][-1]).start() for pk in sessions}
    await wait_until(lambda: all(c.connects for c in clients.values()), deadline=20)

    stream = ChangeStream([(order.pk, status) for status in STEPS for order in orders], interval=CHANGE_INTERVAL)
    stream.start()
    await asyncio.sleep(OUTAGE_AFTER)  # let the stream run on a healthy Redis first
    await asyncio.to_thread(private_redis.stop)
    outage_started = time.monotonic()
    # The web process keeps serving pages (sessions and pages need no Redis).
    async with httpx.AsyncClient(timeout=5) as http:
        probe = await http.get(f"{web.base_url}/accounts/login/")
    await asyncio.sleep(OUTAGE - (time.monotonic() - outage_started))  # the outage itself
    await asyncio.to_thread(private_redis.start)
    restarted = time.monotonic()
    await asyncio.to_thread(stream.join, 120)

    expected = await in_thread(seqs_by_user)

    def missing():
        return clients_behind(clients, expected, start_seqs)

    recovery = await wait_until(lambda: not missing(), deadline=RECOVERY_DEADLINE, describe=missing)
    # The sweeper publishes what failed during the outage (the clients already have it by resume).
    unpublished = Notification.objects.filter(published_at=None)
    swept = await wait_until_async(lambda: in_thread(lambda: not unpublished.exists()), deadline=RECOVERY_DEADLINE)
    for client in clients.values():
        await client.stop()

    committed = sum(len(expected[pk]) - len(start_seqs[pk]) for pk in clients)
    figures = delivery_figures(clients.values(), committed=committed)
    delivered = figures["notifications_delivered"]
    record(
        "redis_restart",
        clients=len(clients),
        changes_committed=stream.committed,
        **figures,
        handshake_failures=sum((c.handshake_failures for c in clients.values()), start=Counter()),
        outage_seconds=OUTAGE,
        http_status_during_outage=probe.status_code,
        seconds_from_redis_back_to_all_delivered=round(time.monotonic() - restarted, 2),
        seconds_until_the_sweeper_published_every_row=round(swept, 2),
    )
    assert stream.errors == []  # a publish failure never failed a change
    assert stream.committed == len(stream.plan)
    assert probe.status_code == 200
    assert committed == delivered == stream.committed
    assert recovery < RECOVERY_DEADLINE
    assert 1011 not in figures["close_codes"]
    web.process.check_running()
