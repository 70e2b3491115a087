"""Fault 4c: the Celery broker stopped and started again, on the broker this run tests (Redis or RabbitMQ).

Its own broker server, so stopping it disturbs nothing else: the private Redis (which is the channel layer too)
or a private rabbitmq-server. Two things happen to tasks across a restart, each tested here: what was waiting in
the broker survives or not, and a task queued after commit while the broker is down (shop/task_sends.py).
"""

import asyncio
import re
import time

import pytest

from orders.models import Order, OrderEvent, OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import place_order
from tests.faults.client import in_thread, wait_until
from tests.faults.conftest import BROKER, record
from tests.faults.pause_in_task import REACHED, RELEASE
from tests.live.servers import live_db
from tests.rabbitmq_server import amqp_queue_depth

pytestmark = [live_db, requires_postgres(), requires_redis()]

TASK = "orders.tasks.confirm_payment"
NEXT_TASK = "orders.tasks.advance_fulfilment"
WAITING = 6
DEADLINE = 90.0  # a restart of RabbitMQ takes 5-30 s on a loaded 2-core machine


class Broker:
    """The cluster's broker server: how many tasks wait in its queue, and its stop and start."""

    def __init__(self, cluster, server):
        self.cluster, self.server = cluster, server

    def waiting(self) -> int:
        if BROKER == "rabbitmq":
            return amqp_queue_depth(self.server.url, self.cluster.queue)[0]
        return self.server.admin.llen(self.cluster.queue)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@pytest.fixture
def broker(request) -> Broker:
    """The cluster on a broker the test may restart: a private RabbitMQ, or the private Redis."""
    if BROKER == "rabbitmq":
        return Broker(request.getfixturevalue("rabbitmq_cluster"), request.getfixturevalue("private_rabbitmq"))
    return Broker(request.getfixturevalue("cluster"), request.getfixturevalue("private_redis"))


def statuses(order_ids) -> list[str]:
    return list(Order.objects.filter(pk__in=order_ids).order_by("pk").values_list("status", flat=True))


def task_outcomes(log: str, task: str = TASK) -> list[str]:
    return re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded in \S+: (True|False)", log)


async def test_tasks_waiting_in_the_broker_survive_its_restart_on_rabbitmq_only(broker):
    orders = await in_thread(lambda: [place_order().pk for _ in range(WAITING)])
    for order_id in orders:  # no worker yet: they wait in the broker's queue
        broker.cluster.send_task(TASK, order_id)
    waiting_before = broker.waiting()

    started = time.monotonic()
    await asyncio.to_thread(broker.stop)
    await asyncio.to_thread(broker.start)
    restart_seconds = time.monotonic() - started
    waiting_after = broker.waiting()

    worker = await asyncio.to_thread(broker.cluster.worker)
    ran_after = await wait_until(
        lambda: len(task_outcomes(worker.log_text())) == waiting_after, deadline=DEADLINE, describe=worker.log_tail
    )
    paid = (await in_thread(statuses, orders)).count(OrderStatus.PAID)

    record(
        f"broker_restart_waiting_tasks_{BROKER}",
        broker=BROKER,
        tasks_waiting_before_the_restart=waiting_before,
        tasks_waiting_after_the_restart=waiting_after,
        seconds_to_stop_and_start_the_broker=round(restart_seconds, 2),
        seconds_from_worker_ready_to_all_run=round(ran_after, 2),
        orders_paid=paid,
    )
    assert waiting_before == WAITING
    # RabbitMQ keeps a quorum queue's messages on disk; Redis, run as compose runs it (no RDB, no AOF), keeps nothing.
    assert waiting_after == (WAITING if BROKER == "rabbitmq" else 0)
    assert paid == waiting_after


async def test_a_task_queued_after_commit_while_the_broker_is_down_is_logged_and_the_change_stands(broker, tmp_path):
    order_id = await in_thread(lambda: place_order().pk)
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    # Stops inside confirm_payment before its commit; after it, the paid order's next step is queued (the demo's).
    worker = await asyncio.to_thread(
        broker.cluster.worker,
        settings_module="tests.faults.settings_pause_in_task",
        extra_env={"FAULT_PAUSE_AT": "before_commit", "FAULT_PAUSE_DIR": str(pause_dir),
                   "SIMULATE_ORDER_PROGRESS": "true", "FULFILMENT_STEP_DELAY": "0.5"},
    )  # fmt: skip
    broker.cluster.send_task(TASK, order_id)
    await wait_until(lambda: (pause_dir / REACHED).exists(), deadline=30, describe=lambda: worker.log_tail(lines=30))

    await asyncio.to_thread(broker.stop)
    log_at_stop = worker.log_size()
    (pause_dir / RELEASE).write_text("")  # the task commits now, with the broker down
    released = time.monotonic()
    await wait_until(lambda: task_outcomes(worker.log_text(since=log_at_stop)), deadline=DEADLINE,
                     describe=worker.log_tail)  # fmt: skip
    first_run_finished = time.monotonic() - released
    during_outage = worker.log_text(since=log_at_stop)
    not_queued = [line for line in during_outage.splitlines() if "task_not_queued" in line]
    status_during_outage = (await in_thread(statuses, [order_id]))[0]

    await asyncio.to_thread(broker.start)
    log_at_start = worker.log_size()
    # The worker reconnects by itself; on RabbitMQ the unacked confirm_payment comes back and finds the order paid.
    if BROKER == "rabbitmq":
        await wait_until(lambda: task_outcomes(worker.log_text(since=log_at_start)), deadline=DEADLINE,
                         describe=worker.log_tail)  # fmt: skip
    else:
        await wait_until(lambda: re.search(r"Connected to redis://", worker.log_text(since=log_at_start)),
                         deadline=DEADLINE, describe=worker.log_tail)  # fmt: skip
    reruns = task_outcomes(worker.log_text(since=log_at_start))
    final_status = (await in_thread(statuses, [order_id]))[0]
    paid_events = await in_thread(
        lambda: OrderEvent.objects.filter(order_id=order_id, new_status=OrderStatus.PAID).count()
    )
    worker.check_running()

    record(
        f"broker_down_at_after_commit_send_{BROKER}",
        broker=BROKER,
        first_run_result=task_outcomes(during_outage),
        seconds_from_commit_to_task_finished=round(first_run_finished, 2),
        task_not_queued_lines=not_queued,
        order_status_during_outage=status_during_outage,
        reruns_after_the_restart=reruns,
        order_status_after=final_status,
        paid_events=paid_events,
    )
    assert task_outcomes(during_outage) == ["True"]  # the change committed and the task did not fail for the send
    assert status_during_outage == final_status == OrderStatus.PAID
    assert paid_events == 1
    # Not silent: one ERROR naming the task that was not queued and its order.
    assert len(not_queued) == 1 and f"task={NEXT_TASK}" in not_queued[0] and f"args=({order_id}, " in not_queued[0]
    assert "task_failed" not in during_outage  # (the consumer's own lost connection is logged, with its traceback)
    assert reruns == (["False"] if BROKER == "rabbitmq" else [])
