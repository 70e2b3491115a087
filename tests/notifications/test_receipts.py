"""notifications_mark_delivered: one UPDATE per ack, the first delivery time kept, one user's rows only."""

import pytest
from django.utils import timezone

from notifications.models import Notification
from notifications.receipts import notifications_mark_delivered
from orders.models import OrderStatus
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db


def delivered_at(user) -> dict:
    return dict(Notification.objects.filter(recipient=user).values_list("seq", "delivered_at"))


def test_marks_the_users_undelivered_notifications_up_to_the_seq_in_one_query(django_assert_num_queries):
    customer, other = UserFactory(), UserFactory()
    place_order(customer=customer, status=OrderStatus.DELIVERED)  # seqs 1-4
    place_order(customer=other, status=OrderStatus.DELIVERED)
    before = timezone.now()
    with django_assert_num_queries(1):
        assert notifications_mark_delivered(user_id=customer.pk, up_to_seq=3) == 3
    marked = delivered_at(customer)
    assert all(before <= marked[seq] <= timezone.now() for seq in (1, 2, 3))
    assert marked[4] is None
    assert set(delivered_at(other).values()) == {None}


def test_a_second_ack_keeps_the_first_delivery_times_and_counts_only_the_new():
    customer = UserFactory()
    place_order(customer=customer, status=OrderStatus.DELIVERED)
    notifications_mark_delivered(user_id=customer.pk, up_to_seq=2)
    first = delivered_at(customer)
    assert notifications_mark_delivered(user_id=customer.pk, up_to_seq=4) == 2
    assert notifications_mark_delivered(user_id=customer.pk, up_to_seq=4) == 0
    later = delivered_at(customer)
    assert (later[1], later[2]) == (first[1], first[2])
    assert later[3] is not None and later[4] is not None


def test_after_seq_leaves_what_the_socket_acknowledged_before_unread():
    customer = UserFactory()
    place_order(customer=customer, status=OrderStatus.DELIVERED)
    assert notifications_mark_delivered(user_id=customer.pk, up_to_seq=4, after_seq=2) == 2
    marked = delivered_at(customer)
    assert (marked[1], marked[2]) == (None, None)
    assert marked[3] is not None and marked[4] is not None
