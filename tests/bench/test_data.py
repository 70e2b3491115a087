"""The bench's generated data: its orders are reset between scenarios with no history and no notification."""

import pytest

from bench.data import orders_reset
from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderStatus
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_resetting_bench_orders_puts_them_back_to_pending_payment_and_records_nothing():
    order = place_order(status=OrderStatus.DELIVERED)
    events, notifications = OrderEvent.objects.count(), Notification.objects.count()

    orders_reset([order.pk])

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert (OrderEvent.objects.count(), Notification.objects.count()) == (events, notifications)


def test_the_orders_queryset_has_no_way_to_overwrite_a_status():
    assert not hasattr(Order.objects.all(), "status_overwrite_for_seeding")
