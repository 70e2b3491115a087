"""A worker process sends its notifications from one long-lived event loop, over one Redis connection."""

import asyncio
import os
import threading

import pytest
import redis

from notifications import publishing_loop
from notifications.groups import user_group
from notifications.models import Notification
from notifications.publishing_loop import run_until_sent
from notifications.services import group_send_all
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import place_order

pytestmark = pytest.mark.django_db

DEADLINE = 10.0


@pytest.fixture
def as_a_worker(monkeypatch):
    """This test process publishes as a Celery worker's does (celery_app.py); its loop is stopped afterwards."""
    monkeypatch.setattr(publishing_loop, "_loop", None)
    monkeypatch.setattr(publishing_loop, "_enabled", False)
    publishing_loop.publishing_loop_enable()
    yield
    if publishing_loop._loop is not None:
        loop = publishing_loop._loop[1]
        loop.call_soon_threadsafe(loop.stop)
        for thread in threading.enumerate():
            if thread.name == "notifications-publishing":
                thread.join(DEADLINE)
        loop.close()  # the channel layer closes its connection on this loop


def connections_received(client: redis.Redis) -> int:
    return client.info("stats")["total_connections_received"]


def test_a_worker_sends_change_after_change_over_one_redis_connection(private_redis, as_a_worker, listen):
    listener = listen(user_group(7))
    run_until_sent(group_send_all, [(user_group(7), {"type": "test.message", "n": 0})])  # opens the connection
    counter = redis.Redis.from_url(private_redis.url)
    before = connections_received(counter)

    for n in range(1, 21):
        run_until_sent(group_send_all, [(user_group(7), {"type": "test.message", "n": n})])

    assert [listener.receive()["n"] for _ in range(21)] == list(range(21))
    assert connections_received(counter) == before


def test_a_change_made_in_a_worker_reaches_its_customer_after_commit(
    as_a_worker, listen, customer, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer, status=OrderStatus.PAID)
    listener = listen(user_group(customer.pk))

    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PROCESSING)

    frame = listener.receive()["frame"]
    recorded = Notification.objects.filter(recipient=customer).latest("seq")
    assert (frame["seq"], frame["order"]["id"], frame["order"]["status"]) == (recorded.seq, order.pk, "processing")
    recorded.refresh_from_db()
    assert recorded.published_at is not None


def test_a_forked_worker_process_sends_from_a_loop_of_its_own(private_redis, as_a_worker, listen):
    listener = listen(user_group(7))
    run_until_sent(group_send_all, [(user_group(7), {"type": "test.message", "sender": "parent"})])

    pid = os.fork()  # as Celery's prefork pool does, after the parent has its loop running
    if pid == 0:
        try:
            run_until_sent(group_send_all, [(user_group(7), {"type": "test.message", "sender": os.getpid()})])
        except BaseException:  # noqa: BLE001 - the exit status says it
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert [listener.receive()["sender"] for _ in range(2)] == ["parent", pid]


def test_a_send_that_never_finishes_is_abandoned_after_the_timeout(as_a_worker, settings):
    settings.NOTIFICATION_PUBLISH_TIMEOUT = 0.2
    cancelled = threading.Event()

    async def send_to_a_redis_that_never_answers():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        run_until_sent(send_to_a_redis_that_never_answers)
    assert cancelled.wait(DEADLINE)  # and it no longer runs on the loop


def test_a_process_that_did_not_ask_for_a_loop_gets_none(monkeypatch):
    """The web process: its sync code's sends go to the server's own loop through async_to_sync."""
    monkeypatch.setattr(publishing_loop, "_enabled", False)
    monkeypatch.setattr(publishing_loop, "_loop", None)
    sent = []

    async def send():
        sent.append(True)

    run_until_sent(send)

    assert sent == [True] and publishing_loop._loop is None
