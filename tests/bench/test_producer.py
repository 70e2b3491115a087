"""The producer scenario's textbook pattern: the same change and frames as the shop's, with no outbox."""

import pytest

from bench.producer import producer_summary, textbook_messages, textbook_transition
from notifications.groups import STAFF_GROUP, user_group
from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderStatus
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_the_textbook_pattern_changes_the_order_and_its_history_but_records_no_notification(
    django_capture_on_commit_callbacks,
):
    order = place_order()

    with django_capture_on_commit_callbacks() as callbacks:
        changed = textbook_transition(order_id=order.pk, to_status=OrderStatus.PAID)

    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.version) == (OrderStatus.PAID, changed.version) == (OrderStatus.PAID, 2)
    assert OrderEvent.objects.filter(order=order, new_status=OrderStatus.PAID).count() == 1
    assert not Notification.objects.exists()
    assert len(callbacks) == 1  # its group sends, after COMMIT


def test_the_textbook_frames_go_to_the_customer_and_staff_as_the_shops_do():
    order = place_order()
    order.status, order.version = OrderStatus.PAID, 2

    (customer_group, customer), (staff_group, staff) = textbook_messages(order, previous_status="pending_payment")

    assert (customer_group, staff_group) == (user_group(order.customer_id), STAFF_GROUP)
    assert customer["frame"]["type"] == "notification" and customer["frame"]["order"]["version"] == 2
    assert staff["frame"]["type"] == "order_changed" and staff["frame"]["customer_id"] == order.customer_id


def test_the_summary_sets_the_shops_slowest_and_fastest_against_the_textbooks():
    runs = [
        {"pattern": "shop", "changes_per_second": 10.0},
        {"pattern": "textbook", "changes_per_second": 20.0},
        {"pattern": "textbook", "changes_per_second": 25.0},
        {"pattern": "shop", "changes_per_second": 15.0},
    ]

    summary = producer_summary(runs)

    assert summary["shop"] == {"min": 10.0, "max": 15.0}
    assert summary["shop_over_textbook"] == {"min": 10.0 / 25.0, "max": 15.0 / 20.0}
