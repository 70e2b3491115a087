"""Reads of notifications: what every page and every socket starts from."""

import pytest

from notifications.selectors import LiveState, last_seq, live_state, unread_count, unread_counts
from notifications.services import notification_record_order_status_change, notifications_mark_read
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db


def record(user, count: int) -> None:
    order = place_order(customer=user)
    for _ in range(count):
        notification_record_order_status_change(order=order, previous_status=None)


def test_live_state_is_the_last_seq_and_unread_count_in_one_query(customer, django_assert_num_queries):
    record(customer, 5)
    notifications_mark_read(user_id=customer.pk, seq=2)
    notifications_mark_read(user_id=customer.pk, seq=4)
    with django_assert_num_queries(1):
        state = live_state(user_id=customer.pk)
    assert (state.last_seq, state.unread) == (5, 3)
    assert (state.last_seq, state.unread) == (last_seq(user_id=customer.pk), unread_count(user_id=customer.pk))


def test_live_state_of_a_user_never_notified_is_seq_zero_nothing_unread(customer):
    state = live_state(user_id=customer.pk)
    assert (state.last_seq, state.unread) == (0, 0)


def test_live_state_counts_only_the_users_own_notifications(customer, other_customer):
    record(customer, 2)
    record(other_customer, 4)
    notifications_mark_read(user_id=other_customer.pk)
    assert live_state(user_id=customer.pk) == LiveState(last_seq=2, unread=2)
    assert live_state(user_id=other_customer.pk) == LiveState(last_seq=4, unread=0)


def test_unread_counts_are_one_query_for_many_users_leaving_out_those_with_none(
    customer, other_customer, django_assert_num_queries
):
    all_read, never_notified, not_asked_about = UserFactory(), UserFactory(), UserFactory()
    record(customer, 3)
    notifications_mark_read(user_id=customer.pk, seq=1)
    record(other_customer, 1)
    record(all_read, 2)
    notifications_mark_read(user_id=all_read.pk)
    record(not_asked_about, 4)

    with django_assert_num_queries(1):
        counts = unread_counts(recipient_ids={customer.pk, other_customer.pk, all_read.pk, never_notified.pk})

    assert counts == {customer.pk: 2, other_customer.pk: 1}
    assert counts[customer.pk] == unread_count(user_id=customer.pk)


def test_unread_counts_of_nobody_is_empty_without_a_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert unread_counts(recipient_ids=set()) == {}
