"""A worker process sends its notifications from one long-lived event loop, over one Redis connection."""

import asyncio
import os
import signal
import threading

import pytest
import redis
from celery import Celery
from celery.signals import worker_init, worker_process_init

from notifications import publishing_loop
from notifications.groups import user_group
from notifications.models import Notification
from notifications.publishing_loop import run_until_sent
from notifications.services import group_send_all
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import place_order
from tests.notifications.conftest import loop_in_thread_close

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
        loop_in_thread_close(*publishing_loop._loop)


def connections_received(client: redis.Redis) -> int:
    return client.info("stats")["total_connections_received"]


def send_to_customer_7(timeout: float = DEADLINE, **fields) -> None:
    run_until_sent(group_send_all, [(user_group(7), {"type": "test.message", **fields})], timeout=timeout)


class AnotherAppsWorker:
    app = Celery("another-app", set_as_current=False)  # the shop's app stays the current one


@pytest.mark.parametrize("celery_signal", [worker_init, worker_process_init], ids=["worker", "pool process"])
def test_a_celery_worker_and_its_pool_processes_send_from_a_loop_of_their_own(celery_signal, monkeypatch):
    monkeypatch.setattr(publishing_loop, "_enabled", False)
    # Sent by a worker of another Celery app, which Celery's Django fixup leaves alone: it would otherwise
    # set up this test process as a worker (close database connections after each task, and more).
    a_worker = AnotherAppsWorker()

    celery_signal.send(sender=a_worker)

    assert publishing_loop._enabled


def test_a_worker_sends_change_after_change_over_one_redis_connection(private_redis, as_a_worker, listen):
    listener = listen(user_group(7))
    send_to_customer_7(n=0)  # opens the connection
    counter = redis.Redis.from_url(private_redis.url)
    before = connections_received(counter)

    for n in range(1, 21):
        send_to_customer_7(n=n)

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
    send_to_customer_7(sender="parent")

    pid = os.fork()  # as Celery's prefork pool does, after the parent has its loop running
    if pid == 0:
        try:
            send_to_customer_7(sender=os.getpid())
        except BaseException:  # the exit status says it
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert [listener.receive()["sender"] for _ in range(2)] == ["parent", pid]


def test_a_send_to_a_redis_that_stopped_answering_is_abandoned_and_the_next_one_goes_through(
    private_redis, as_a_worker, listen
):
    listener = listen(user_group(7))
    send_to_customer_7(n=0)
    os.kill(private_redis.process.pid, signal.SIGSTOP)  # there, but silent: no refusal, no reset
    try:
        with pytest.raises(TimeoutError):
            send_to_customer_7(timeout=0.5, n=1)
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)

    send_to_customer_7(n=2)

    received = [listener.receive()["n"]]
    while received[-1] != 2:
        received.append(listener.receive()["n"])
    # The abandoned publish may still have reached Redis before it went quiet; the sockets drop duplicates by seq.
    assert received in ([0, 2], [0, 1, 2])


class NeverFinishingSend:
    """A send that waits forever, and tells when it is cancelled."""

    def __init__(self):
        self.cancelled = threading.Event()

    async def __call__(self):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def test_a_send_that_never_finishes_is_cancelled_on_the_loop_at_its_deadline(as_a_worker):
    send = NeverFinishingSend()

    with pytest.raises(TimeoutError):
        run_until_sent(send, timeout=0.2)
    assert send.cancelled.wait(DEADLINE)


def test_a_send_whose_caller_is_interrupted_is_cancelled_too(as_a_worker):
    """A task's time limit or a signal: the send must not linger on the loop, holding the layer's connection."""
    send = NeverFinishingSend()

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(Interrupted):
            run_until_sent(send, timeout=DEADLINE)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert send.cancelled.wait(DEADLINE)


def test_a_loop_whose_thread_has_stopped_is_replaced(private_redis, as_a_worker, listen):
    listener = listen(user_group(7))
    send_to_customer_7(n=0)
    first_loop = publishing_loop._loop[0]
    loop_in_thread_close(*publishing_loop._loop)

    send_to_customer_7(n=1)

    assert [listener.receive()["n"] for _ in range(2)] == [0, 1]
    assert publishing_loop._loop[0] is not first_loop


def test_a_process_without_a_loop_of_its_own_cancels_a_send_at_its_deadline_too(monkeypatch):
    """The web process: a send may not outlive the claim on the rows it sends (services.py)."""
    monkeypatch.setattr(publishing_loop, "_enabled", False)
    send = NeverFinishingSend()

    with pytest.raises(TimeoutError):
        run_until_sent(send, timeout=0.2)
    assert send.cancelled.is_set()


def test_a_process_that_did_not_ask_for_a_loop_gets_none(monkeypatch):
    """The web process: its sync code's sends go to the server's own loop through async_to_sync."""
    monkeypatch.setattr(publishing_loop, "_enabled", False)
    monkeypatch.setattr(publishing_loop, "_loop", None)
    sent = []

    async def send():
        sent.append(True)

    run_until_sent(send, timeout=DEADLINE)

    assert sent == [True] and publishing_loop._loop is None
