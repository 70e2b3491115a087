"""Reads of orders: when the customer's page showed each status change (delivery receipts)."""

import pytest

from notifications.receipts import notifications_mark_delivered
from orders.models import OrderStatus
from orders.selectors import order_status_changes_seen
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db

S = OrderStatus


def test_each_acknowledged_status_change_is_seen_at_its_notifications_delivery_in_one_query(
    django_assert_num_queries,
):
    customer = UserFactory()
    earlier = place_order(customer=customer, status=S.PAID)  # seq 1: another order of the same customer
    order = place_order(customer=customer, status=S.SHIPPED)  # seqs 2-4: paid, processing, shipped
    place_order(status=S.SHIPPED)  # someone else's
    notifications_mark_delivered(up_to_seqs={customer.pk: 3})
    with django_assert_num_queries(1):
        seen = order_status_changes_seen(order=order)
    assert set(seen) == {(S.PENDING_PAYMENT, S.PAID), (S.PAID, S.PROCESSING)}
    assert set(order_status_changes_seen(order=earlier)) == {(S.PENDING_PAYMENT, S.PAID)}
    delivered = customer.notifications.get(seq=2).delivered_at
    assert seen[(S.PENDING_PAYMENT, S.PAID)] == delivered


def test_an_order_no_page_acknowledged_has_nothing_seen():
    order = place_order(status=S.DELIVERED)
    assert order_status_changes_seen(order=order) == {}
