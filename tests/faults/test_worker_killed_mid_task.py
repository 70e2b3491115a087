"""Fault 4: a Celery worker is SIGKILLed inside confirm_payment; the task is redelivered and runs once more.

Worker A runs with tests.faults.settings_pause_in_task and stops inside the task, either
before its transaction commits or after it committed but before the late ack. The test
kills it there, starts worker B (plain shop settings) and watches the broker's own
bookkeeping (`RedisBroker`, `RabbitMQBroker` below). Or it kills only A's pool process
(prefork): A itself puts the task back (CELERY_TASK_REJECT_ON_WORKER_LOST) and runs it again.
"""

import asyncio
import os
import re
import signal
import time

import pytest
import redis

from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import ResilientClient, in_thread, wait_until
from tests.faults.conftest import BROKER, record
from tests.faults.pause_in_task import REACHED
from tests.live.clients import Browser
from tests.live.servers import live_db
from tests.rabbitmq_server import amqp_queue_depth

pytestmark = [live_db, requires_postgres(), requires_redis()]

TASK = "orders.tasks.confirm_payment"
# The cluster's visibility timeout (3 s), a sweep (every 1 s with shop.settings) and worker B's
# start take seconds; kombu's default sweep (a Redis read every ~100 s) would miss this deadline.
REDELIVERY_DEADLINE = 60.0
# kombu's Redis transport keys for delivered-but-unacked messages (no global_keyprefix is set).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
# What the order looks like in the database while worker A is stopped there.
STATUS_WHILE_PAUSED = {"before_commit": OrderStatus.PENDING_PAYMENT, "before_ack": OrderStatus.PAID}


class RedisBroker:
    """kombu keeps a delivered, unacked message in the `unacked` hash and the `unacked_index` sorted set (score: when
    it was delivered) until it is acked; a consuming worker puts it back on the queue once it is older than the
    visibility timeout, and B's delivery re-adds it with a new score."""

    def __init__(self, cluster):
        self.client = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
        self.queue = cluster.queue

    def held_by_a_worker(self) -> float:
        """Asserts one message is delivered and unacked, none waiting; returns when it was delivered (wall clock)."""
        [(self.tag, self.delivered_at)] = self.client.zrange(UNACKED_INDEX, 0, -1, withscores=True)
        assert self.client.hexists(UNACKED, self.tag) and self.client.llen(self.queue) == 0
        return self.delivered_at

    def still_held(self) -> bool:
        return self.client.zscore(UNACKED_INDEX, self.tag) == self.delivered_at and self.client.llen(self.queue) == 0

    def restored(self) -> bool:
        return self.client.zscore(UNACKED_INDEX, self.tag) != self.delivered_at

    def describe(self):
        return self.client.zrange(UNACKED_INDEX, 0, -1, withscores=True)

    def nothing_left(self) -> bool:
        """Nothing unacked and nothing waiting: the rerun's ack reached the broker."""
        return self.client.hlen(UNACKED) == 0 and self.client.llen(self.queue) == 0

    def close(self) -> None:
        self.client.close()


class RabbitMQBroker:
    """RabbitMQ counts a delivered, unacked message apart from the ready ones, and requeues it the moment the
    consumer's connection (or channel) closes; a passive declare reports the ready ones and the consumers."""

    def __init__(self, cluster):
        self.url, self.queue = cluster.rabbitmq_url, cluster.queue

    def held_by_a_worker(self) -> None:
        """Asserts none is ready and A consumes (so A holds the one); RabbitMQ does not say when it was delivered."""
        assert amqp_queue_depth(self.url, self.queue) == (0, 1)

    def still_held(self) -> bool:
        return True  # nothing to read once A's connection is gone: RabbitMQ requeued at once (see `restored`)

    def restored(self) -> bool:
        ready, _ = amqp_queue_depth(self.url, self.queue)
        return ready == 1

    def describe(self):
        return amqp_queue_depth(self.url, self.queue)

    def nothing_left(self) -> bool:
        """Nothing waiting once every consumer is gone (what one held unacked would be back): the rerun acked."""
        return amqp_queue_depth(self.url, self.queue) == (0, 0)

    def close(self) -> None:
        pass


BROKERS = {"redis": RedisBroker, "rabbitmq": RabbitMQBroker}


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


@pytest.mark.parametrize(
    ("pause_at", "killed"), [("before_commit", "worker"), ("before_ack", "worker"), ("before_commit", "pool_process")]
)
async def test_task_of_a_worker_killed_mid_task_is_redelivered_and_pays_once(
    cluster, servers_user, tmp_path, pause_at, killed
):
    broker = BROKERS[BROKER](cluster)
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
        pool="prefork" if killed == "pool_process" else "solo",
    )
    cluster.send_task(TASK, order.pk)
    await wait_until(lambda: (pause_dir / REACHED).exists(), deadline=30, describe=lambda: doomed.log_tail(lines=30))
    marker = (pause_dir / REACHED).read_text()
    assert marker.startswith(pause_at) and f"in_transaction={pause_at == 'before_commit'}" in marker, marker
    pool_process = int(re.search(r"pid=(\d+)", marker).group(1))
    assert (pool_process == doomed.process.pid) == (killed == "worker")

    # Worker A holds the message, delivered but unacked; the database shows the pause point.
    status_while_paused, *_ = await in_thread(paid_history, order.pk, customer)
    assert status_while_paused == STATUS_WHILE_PAUSED[pause_at]
    delivered_at = broker.held_by_a_worker()

    notified_before_kill = client.delivered == [1]
    log_before_kill = doomed.log_size()
    if killed == "worker":
        doomed.process.kill()
        exit_code = await asyncio.to_thread(doomed.process.wait, 10)
    else:
        os.kill(pool_process, signal.SIGKILL)
        exit_code = -signal.SIGKILL  # the pool process's; A's main process lives on and sees it go
    killed_at, killed_at_wall = time.monotonic(), time.time()
    # SIGKILL: no warm shutdown, so nothing put the message back; on Redis only the visibility timeout can.
    assert killed == "pool_process" or broker.still_held()

    watch_notification = asyncio.create_task(
        wait_until(lambda: client.delivered == [1], deadline=REDELIVERY_DEADLINE, describe=lambda: client.delivered)
    )
    if killed == "worker":
        # Restored = back on the queue (on Redis: taken out of the index; B re-adds it with a new score).
        watch_restore = asyncio.create_task(
            wait_until(broker.restored, deadline=REDELIVERY_DEADLINE, interval=0.05, describe=broker.describe)
        )
        rerunner = await asyncio.to_thread(cluster.worker)
        rerunner_ready_after = time.monotonic() - killed_at
        restored_after = await watch_restore
        rerun_log_from = 0
    else:
        rerunner, rerunner_ready_after, restored_after = doomed, 0.0, None  # A itself runs it again
        rerun_log_from = log_before_kill
    await wait_until(
        lambda: task_outcomes(rerunner.log_text(since=rerun_log_from)), deadline=REDELIVERY_DEADLINE,
        describe=rerunner.log_tail,
    )  # fmt: skip
    rerun_after = time.monotonic() - killed_at
    notified_after = await watch_notification

    status, paid_events, notifications = await in_thread(paid_history, order.pk, customer)
    outcomes = task_outcomes(rerunner.log_text(since=rerun_log_from))
    await asyncio.to_thread(rerunner.stop)  # a warm shutdown puts back what is still unacked: nothing may be
    nothing_left = broker.nothing_left()
    await client.stop()
    await shopper.aclose()
    broker.close()

    record(
        f"worker_killed_mid_task_{pause_at}" + ("_pool_process" if killed == "pool_process" else "") + f"_{BROKER}",
        broker=BROKER,
        killed=f"{killed.replace('_', ' ')} {pause_at.replace('_', ' ')}",
        killed_exit_code=exit_code,
        visibility_timeout_seconds=int(cluster.env["CELERY_VISIBILITY_TIMEOUT"]) if BROKER == "redis" else None,
        order_status_while_paused=status_while_paused,
        seconds_from_delivery_to_kill=round(killed_at_wall - delivered_at, 2) if delivered_at else None,
        seconds_from_kill_to_new_worker_ready=round(rerunner_ready_after, 2) if killed == "worker" else None,
        seconds_from_kill_to_message_restored=round(restored_after, 2) if restored_after is not None else None,
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
    # Before commit A's change rolled back and the rerun made it; after commit the rerun found it done.
    assert outcomes == (["True"] if pause_at == "before_commit" else ["False"])
    assert client.delivered == [1] and client.frames_with_seq == 1
    assert nothing_left
