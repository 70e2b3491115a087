"""Delivery receipts: one UPDATE for many users' acks, the first delivery time kept, each user's rows only."""

import pytest
from django.utils import timezone

from notifications.models import Notification
from notifications.receipts import notifications_mark_delivered
from orders.models import OrderStatus
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db


def delivered_at(user) -> dict:
    return dict(Notification.objects.filter(recipient=user).values_list("seq", "delivered_at"))


def test_marks_each_users_undelivered_notifications_up_to_their_seq_in_one_query(django_assert_num_queries):
    alice, bob, bystander = UserFactory(), UserFactory(), UserFactory()
    for customer in (alice, bob, bystander):
        place_order(customer=customer, status=OrderStatus.DELIVERED)  # seqs 1-4 each
    before = timezone.now()
    with django_assert_num_queries(1):
        assert notifications_mark_delivered(up_to_seqs={alice.pk: 3, bob.pk: 1}) == 4
    marked = delivered_at(alice)
    assert all(before <= marked[seq] <= timezone.now() for seq in (1, 2, 3))
    assert marked[4] is None
    assert [seq for seq, at in sorted(delivered_at(bob).items()) if at] == [1]
    assert set(delivered_at(bystander).values()) == {None}


def test_a_second_ack_keeps_the_first_delivery_times_and_counts_only_the_new():
    customer = UserFactory()
    place_order(customer=customer, status=OrderStatus.DELIVERED)
    notifications_mark_delivered(up_to_seqs={customer.pk: 2})
    first = delivered_at(customer)
    assert notifications_mark_delivered(up_to_seqs={customer.pk: 4}) == 2
    assert notifications_mark_delivered(up_to_seqs={customer.pk: 4}) == 0
    later = delivered_at(customer)
    assert (later[1], later[2]) == (first[1], first[2])
    assert later[3] is not None and later[4] is not None


def test_no_acks_write_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert notifications_mark_delivered(up_to_seqs={}) == 0
