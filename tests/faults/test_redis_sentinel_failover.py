"""Fault 1c: the Redis primary is SIGKILLed mid-stream; the sentinels promote its replica and the shop follows.

Two web processes, a Celery worker and beat find Redis only through three sentinels (`REDIS_SENTINELS`), as the
test process does. Customers watch while their orders change two ways: the test moves paid orders along
(`order_transition`, as staff would) and the worker confirms pending payments from tasks the test queues (the
worker publishes those). Replication is asynchronous and pub/sub keeps nothing, so whatever the primary held when
it died may be gone; a notification's durability is in PostgreSQL (the outbox, the sweeper and `?after=` resume),
and that is what the test holds the shop to: every committed notification shown once per connection, in order.
"""

import asyncio
import threading
import time
from collections import Counter

import httpx
from django.db import connections

from notifications.models import Notification
from orders.models import Order, OrderStatus
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
from tests.redis_server import wait_for

pytestmark = [live_db, requires_postgres(), requires_redis()]

CUSTOMERS = 8
MOVED_ORDERS_EACH = 3  # paid orders the test walks to delivered
PAID_BY_WORKER_EACH = 2  # pending orders the worker pays, one confirm_payment task each
STEPS = [OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
CHANGE_INTERVAL = 0.1  # about 10 status changes a second from the test
TASK_INTERVAL = 0.4  # and a payment task every 0.4 s
DELIVERED_BEFORE_KILL = 10  # mid-stream: the kill comes once this many notifications reached the pages
PROMOTION_DEADLINE = 30.0
RECOVERY_DEADLINE = 60.0
TASK_SEND_DEADLINE = 30.0  # a task the broker refuses (no primary) is sent again until this
TASKS_SETTLE = 20.0  # the cluster's visibility timeout (3 s) and a sweep, with room to spare


def shop_with_customers():
    """Customers with paid orders (moved by the test), pending ones (paid by the worker) and a session each."""
    customers = [UserFactory() for _ in range(CUSTOMERS)]
    moved = [place_order(customer=c, status=OrderStatus.PAID) for c in customers for _ in range(MOVED_ORDERS_EACH)]
    pending = [place_order(customer=c) for c in customers for _ in range(PAID_BY_WORKER_EACH)]
    sessions = sessions_for(customers)
    connections.close_all()
    return moved, pending, sessions


class PaymentTasks(threading.Thread):
    """Queues confirm_payment for each pending order at a steady pace, sending again while the broker refuses."""

    def __init__(self, cluster, orders):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.order_ids = [order.pk for order in orders]
        self.sent_at: dict[int, float] = {}  # order id -> time.monotonic() its task was accepted by the broker
        self.refused: Counter = Counter()  # sends the broker refused, by error

    def run(self):
        for order_id in self.order_ids:
            end = time.monotonic() + TASK_SEND_DEADLINE
            while order_id not in self.sent_at and time.monotonic() < end:
                try:
                    self.cluster.send_task("orders.tasks.confirm_payment", order_id)
                    self.sent_at[order_id] = time.monotonic()
                except Exception as error:  # no primary yet: counted, and sent again
                    self.refused[type(error).__name__] += 1
                    time.sleep(CHANGE_INTERVAL)  # a retry's pace, as a caller's backoff
            time.sleep(TASK_INTERVAL)  # the pace of the stream, not synchronisation


def paid(order_ids) -> set[int]:
    return set(Order.objects.filter(pk__in=order_ids, status=OrderStatus.PAID).values_list("pk", flat=True))


async def readiness(web) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{web.base_url}/readyz")
    return {**response.json(), "http_status": response.status_code}


async def test_primary_killed_mid_stream_the_replica_is_promoted_and_nothing_is_lost_or_shown_twice(
    sentinel_cluster, sentinel_group
):
    webs = [sentinel_cluster.web(), sentinel_cluster.web()]
    worker = await asyncio.to_thread(sentinel_cluster.worker)
    beat = await asyncio.to_thread(sentinel_cluster.beat)
    moved, pending, sessions = await in_thread(shop_with_customers)
    start_seqs = await in_thread(seqs_by_user)
    clients = {
        pk: ResilientClient(webs[index % 2 :] + webs[: index % 2], sessions[pk], last_seq=start_seqs[pk][-1]).start()
        for index, pk in enumerate(sessions)
    }  # half the customers start on each web process
    await wait_until(lambda: all(c.user_id is not None for c in clients.values()), deadline=20)
    assert [(await readiness(web))["http_status"] for web in webs] == [200, 200]

    changes = ChangeStream([(order.pk, status) for status in STEPS for order in moved], interval=CHANGE_INTERVAL)
    payments = PaymentTasks(sentinel_cluster, pending)
    changes.start()
    payments.start()
    await wait_until(lambda: sum(len(c.delivered) for c in clients.values()) >= DELIVERED_BEFORE_KILL, deadline=20)
    await asyncio.to_thread(sentinel_group.primary.kill)
    killed_at = time.monotonic()
    promotion = await asyncio.to_thread(wait_for, sentinel_group.promoted, deadline=PROMOTION_DEADLINE,
                                        what="the sentinels promote the replica")  # fmt: skip
    promoted_at = killed_at + promotion

    await asyncio.to_thread(changes.join, 120)
    await asyncio.to_thread(payments.join, 120)
    # Every task the broker accepted after the promotion is run by the same worker, which found the new primary.
    after_promotion = [pk for pk, sent in payments.sent_at.items() if sent > promoted_at]
    worker_recovery = await wait_until_async(
        lambda: in_thread(lambda: paid(after_promotion) == set(after_promotion)), deadline=RECOVERY_DEADLINE
    )

    # A task the dead primary had not yet passed to the replica is gone with it (replication is asynchronous):
    # the rest, redelivered or not, are done within the visibility timeout and a sweep.
    settle_end = time.monotonic() + TASKS_SETTLE
    while await in_thread(paid, payments.sent_at) != set(payments.sent_at) and time.monotonic() < settle_end:
        await asyncio.sleep(0.2)  # a poll with a deadline; what is still unpaid then is recorded as lost
    expected = await in_thread(seqs_by_user)

    def behind():
        return clients_behind(clients, expected, start_seqs)

    caught_up = await wait_until(lambda: not behind(), deadline=RECOVERY_DEADLINE, describe=behind)
    # The sweeper (beat and the worker, on the new primary) publishes whatever failed meanwhile.
    unpublished = Notification.objects.filter(published_at=None)
    swept = await wait_until_async(lambda: in_thread(lambda: not unpublished.exists()), deadline=RECOVERY_DEADLINE)
    ready_after = [await readiness(web) for web in webs]
    for client in clients.values():
        await client.stop()

    committed = sum(len(expected[pk]) - len(start_seqs[pk]) for pk in clients)
    figures = delivery_figures(clients.values(), committed=committed)
    resumed_at = [min((t for t in c.hello_times if t > killed_at), default=None) for c in clients.values()]
    all_resumed_at = max(resumed_at) if all(resumed_at) else None
    first_delivery = min((t for c in clients.values() for t in c.delivered_times if t > killed_at), default=None)
    lost_tasks = sorted(set(payments.sent_at) - await in_thread(paid, payments.sent_at))
    record(
        "redis_sentinel_failover",
        clients=len(clients),
        web_processes=len(webs),
        changes_committed_by_the_test=changes.committed,
        payment_tasks_accepted=len(payments.sent_at),
        payment_tasks_accepted_after_promotion=len(after_promotion),
        task_sends_refused_during_failover=dict(payments.refused),
        payment_tasks_lost_with_the_primary=len(lost_tasks),
        **figures,
        handshake_failures=sum((c.handshake_failures for c in clients.values()), start=Counter()),
        seconds_from_kill_to_promotion=round(promotion, 2),
        seconds_from_kill_to_first_delivery=round(first_delivery - killed_at, 2) if first_delivery else None,
        seconds_from_kill_to_all_clients_resumed=round(all_resumed_at - killed_at, 2) if all_resumed_at else None,
        seconds_from_promotion_to_all_clients_resumed=round(all_resumed_at - promoted_at, 2)
        if all_resumed_at
        else None,
        seconds_from_streams_end_to_worker_done=round(worker_recovery, 2),
        seconds_from_streams_end_to_all_delivered=round(caught_up, 2),
        seconds_until_the_sweeper_published_every_row=round(swept, 2),
    )
    assert changes.errors == []  # a publish failure never failed a change
    assert changes.committed == len(changes.plan)
    assert set(payments.sent_at) == {order.pk for order in pending}  # the broker took every task in the end
    assert after_promotion, "no task was queued after the promotion: the stream ended too soon"
    # Exactly once per connection, in seq order, for every notification committed during the run.
    assert committed == figures["notifications_delivered"]
    assert figures["lost"] == 0
    assert 1011 not in figures["close_codes"]
    assert all(resumed_at), "every client reconnected after the kill"
    # The same processes throughout: they found the new primary on their own.
    for process in (*[web.process for web in webs], worker, beat):
        process.check_running()
    assert [(r["http_status"], r["checks"]["channel_layer"], r["checks"]["celery_broker"]) for r in ready_after] == [
        (200, "ok", "ok")
    ] * len(webs)
