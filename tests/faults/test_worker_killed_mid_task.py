"""Fault 4: a Celery worker is SIGKILLed inside confirm_payment; the task is redelivered and runs once more.

Worker A runs with tests.faults.settings_pause_in_task and stops inside the task, either
before its transaction commits or after it committed but before the late ack. The test
kills it there, starts worker B (plain shop settings) and watches the broker's own
bookkeeping in Redis: kombu keeps a delivered, unacked message in the `unacked` hash and
the `unacked_index` sorted set (score: when it was delivered) until it is acked, and a
consuming worker puts it back on the queue once it is older than the visibility timeout.
"""

import asyncio
import re
import time

import pytest
import redis

from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import ResilientClient, in_thread, wait_until
from tests.faults.conftest import record
from tests.faults.pause_in_task import REACHED
from tests.live.clients import Browser
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

TASK = "orders.tasks.confirm_payment"
# The cluster's visibility timeout (3 s), a sweep (every 1 s with shop.settings) and worker B's
# start take seconds; kombu's default sweep (a Redis read every ~100 s) would miss this deadline.
REDELIVERY_DEADLINE = 60.0
# kombu's Redis transport keys for delivered-but-unacked messages (no global_keyprefix is set).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
# What the order looks like in the database while worker A is stopped there.
STATUS_WHILE_PAUSED = {"before_commit": OrderStatus.PENDING_PAYMENT, "before_ack": OrderStatus.PAID}


def task_outcomes(log: str) -> list[str]:
    """The return values worker B logged for confirm_payment: "True" (it paid) or "False" (nothing to do)."""
    return re.findall(rf"Task {re.escape(TASK)}\[[^\]]+\] succeeded in \S+: (True|False)", log)


def paid_history(order_id: int, customer) -> tuple[str, int, list[tuple[int, bool]]]:
    return (
        Order.objects.get(pk=order_id).status,
        OrderEvent.objects.filter(order_id=order_id, new_status=OrderStatus.PAID).count(),
        [(seq, published is not None) for seq, published in
         Notification.objects.filter(recipient=customer).values_list("seq", "published_at")],
    )  # fmt: skip


@pytest.mark.parametrize("pause_at", ["before_commit", "before_ack"])
async def test_task_of_a_worker_killed_mid_task_is_redelivered_and_pays_once(
    cluster, private_redis, servers_user, tmp_path, pause_at
):
    broker = redis.Redis.from_url(private_redis.url, decode_responses=True)
    web = cluster.web()
    customer = await in_thread(lambda: servers_user(UserFactory()))
    order = await in_thread(place_order, customer=customer)
    assert order.status == OrderStatus.PENDING_PAYMENT

    shopper = await Browser(web.base_url).login(customer.username)
    client = ResilientClient([web], shopper.session_id).start()
    await wait_until(lambda: client.user_id is not None, deadline=20)  # hello received: the socket is set up

    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    doomed = await asyncio.to_thread(
        cluster.worker,
        settings_module="tests.faults.settings_pause_in_task",
        extra_env={"FAULT_PAUSE_AT": pause_at, "FAULT_PAUSE_DIR": str(pause_dir)},
    )
    cluster.send_task(TASK, order.pk)
    await wait_until(lambda: (pause_dir / REACHED).exists(), deadline=30, describe=lambda: doomed.log_tail(lines=30))
    marker = (pause_dir / REACHED).read_text()
    assert marker.startswith(pause_at) and f"in_transaction={pause_at == 'before_commit'}" in marker, marker

    # Worker A holds the message, delivered but unacked; the database shows the pause point.
    status_while_paused, *_ = await in_thread(paid_history, order.pk, customer)
    assert status_while_paused == STATUS_WHILE_PAUSED[pause_at]
    [(tag, delivered_at)] = broker.zrange(UNACKED_INDEX, 0, -1, withscores=True)
    assert broker.hexists(UNACKED, tag) and broker.llen(cluster.queue) == 0

    notified_before_kill = client.delivered == [1]
    doomed.process.kill()
    exit_code = await asyncio.to_thread(doomed.process.wait, 10)
    killed_at, killed_at_wall = time.monotonic(), time.time()
    # SIGKILL: no warm shutdown, so nothing put the message back; only the visibility timeout can.
    assert broker.zscore(UNACKED_INDEX, tag) == delivered_at and broker.llen(cluster.queue) == 0

    # Restored = taken out of the index (and pushed back on the queue); B re-adds it with a new score.
    watch_restore = asyncio.create_task(
        wait_until(lambda: broker.zscore(UNACKED_INDEX, tag) != delivered_at, deadline=REDELIVERY_DEADLINE,
                   interval=0.05, describe=lambda: broker.zrange(UNACKED_INDEX, 0, -1, withscores=True))
    )  # fmt: skip
    watch_notification = asyncio.create_task(
        wait_until(lambda: client.delivered == [1], deadline=REDELIVERY_DEADLINE, describe=lambda: client.delivered)
    )
    rescuer = await asyncio.to_thread(cluster.worker)
    rescuer_ready_after = time.monotonic() - killed_at
    restored_after = await watch_restore
    await wait_until(
        lambda: task_outcomes(rescuer.log_text()), deadline=REDELIVERY_DEADLINE, describe=lambda: rescuer.log_tail()
    )
    rerun_after = time.monotonic() - killed_at
    notified_after = await watch_notification

    status, paid_events, notifications = await in_thread(paid_history, order.pk, customer)
    outcomes = task_outcomes(rescuer.log_text())
    await wait_until(lambda: broker.hlen(UNACKED) == 0, deadline=10)  # B acked it
    await client.stop()
    await shopper.aclose()
    broker.close()

    record(
        f"worker_killed_mid_task_{pause_at}",
        killed=pause_at.replace("_", " "),
        killed_worker_exit_code=exit_code,
        visibility_timeout_seconds=int(cluster.env["CELERY_VISIBILITY_TIMEOUT"]),
        order_status_while_paused=status_while_paused,
        seconds_from_delivery_to_kill=round(killed_at_wall - delivered_at, 2),
        seconds_from_kill_to_new_worker_ready=round(rescuer_ready_after, 2),
        seconds_from_kill_to_message_restored=round(restored_after, 2),
        seconds_from_delivery_to_message_restored=round(killed_at_wall + restored_after - delivered_at, 2),
        seconds_from_kill_to_rerun_finished=round(rerun_after, 2),
        seconds_from_kill_to_notification_on_socket=None if notified_before_kill else round(notified_after, 2),
        notification_on_socket_before_kill=notified_before_kill,
        rerun_result=outcomes,
        paid_events=paid_events,
        notifications=len(notifications),
        notification_frames_received=client.frames_with_seq,
        delivered_seqs=client.delivered,
    )
    assert exit_code == -9
    assert status == OrderStatus.PAID
    assert paid_events == 1
    assert notifications == [(1, True)]
    # Before commit A's change rolled back and B made it; after commit B's rerun found it done.
    assert outcomes == (["True"] if pause_at == "before_commit" else ["False"])
    assert client.delivered == [1] and client.frames_with_seq == 1
