"""A task queued after commit: never for a rolled-back change, and a broker that refuses it never fails the change."""

import pytest
from celery import Celery
from django.db import transaction

from orders.models import Order
from shop.task_sends import task_send_on_commit
from tests.factories import place_order
from tests.log_capture import json_log_captured
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["amqp", "redis"])
def task_of_a_stopped_broker(request, monkeypatch):
    """A task of a Celery app whose broker (RabbitMQ or Redis) is down: nothing listens at its address."""
    # Celery reads CELERY_BROKER_URL from the environment ahead of any app's own broker: not for this one.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    port = free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}//" if request.param == "amqp" else f"redis://127.0.0.1:{port}/0"
    app = Celery("stopped-broker", broker=url, set_as_current=False)

    @app.task(name="tests.pay")
    def pay(order_id: int) -> None:
        raise AssertionError("a task of a stopped broker never runs")

    yield pay
    app.close()


def test_a_task_the_broker_refuses_after_commit_is_logged_naming_it_and_the_change_stands(
    task_of_a_stopped_broker, customer, django_capture_on_commit_callbacks
):
    with json_log_captured() as log, django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            order = place_order(customer=customer)
            task_send_on_commit(task_of_a_stopped_broker, args=(order.pk,), countdown=3)

    assert Order.objects.filter(pk=order.pk).exists()
    [refused] = log.events("task_not_queued")
    assert (refused["level"], refused["task"], refused["args"]) == ("error", "tests.pay", [order.pk])
    assert refused["error"] == "OperationalError"


def test_a_rolled_back_change_queues_nothing(task_of_a_stopped_broker, customer, django_capture_on_commit_callbacks):
    with json_log_captured() as log, django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            place_order(customer=customer)
            task_send_on_commit(task_of_a_stopped_broker, args=(1,))
            raise RuntimeError("rolled back")

    assert callbacks == [] and log.events("task_not_queued") == []
