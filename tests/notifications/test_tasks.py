"""The outbox's periodic tasks say nothing when there was nothing to do, and one line when they did something."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Notification
from notifications.tasks import deliver_notifications, prune_notifications, republish_notifications
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import place_order
from tests.log_capture import json_log_captured

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("task", [republish_notifications, deliver_notifications, prune_notifications])
def test_an_idle_run_logs_nothing(task):
    with json_log_captured(level=20) as log:  # INFO, the default LOG_LEVEL
        task.delay()
    assert log.lines() == []


def test_a_prune_that_deleted_something_says_how_many(customer, django_capture_on_commit_callbacks):
    order = place_order(customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    Notification.objects.update(created_at=timezone.now() - timedelta(days=365))
    with json_log_captured(level=20) as log:
        prune_notifications.delay()
    assert [(line["event"], line["count"]) for line in log.lines()] == [("notifications_pruned", 1)]
