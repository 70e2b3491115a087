"""Reads of notifications: what every page and every socket starts from."""

import pytest

from notifications.selectors import LiveState, UnreadState, last_seq, live_state, unread_count, unread_states
from notifications.services import notifications_mark_read
from orders.notifications import notification_record_order_status_change
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db


def record(user, count: int) -> None:
    order = place_order(customer=user)
    for _ in range(count):
        notification_record_order_status_change(order=order, previous_status=None)


def test_live_state_is_the_last_seq_and_unread_count_with_its_version_in_one_query(customer, django_assert_num_queries):
    record(customer, 5)  # versions 1 to 5
    notifications_mark_read(user_id=customer.pk, seq=2)  # 6
    notifications_mark_read(user_id=customer.pk, seq=4)  # 7
    with django_assert_num_queries(1):
        state = live_state(user_id=customer.pk)
    assert state == LiveState(last_seq=5, unread=UnreadState(count=3, version=7))
    assert (state.last_seq, state.unread.count) == (last_seq(user_id=customer.pk), unread_count(user_id=customer.pk))


def test_live_state_of_a_user_never_notified_is_seq_zero_nothing_unread_version_zero(customer):
    assert live_state(user_id=customer.pk) == LiveState(last_seq=0, unread=UnreadState(count=0, version=0))


def test_live_state_counts_only_the_users_own_notifications(customer, other_customer):
    record(customer, 2)
    record(other_customer, 4)
    notifications_mark_read(user_id=other_customer.pk)
    assert live_state(user_id=customer.pk) == LiveState(last_seq=2, unread=UnreadState(count=2, version=2))
    assert live_state(user_id=other_customer.pk) == LiveState(last_seq=4, unread=UnreadState(count=0, version=5))


def test_unread_states_are_one_query_for_many_users_leaving_out_those_never_notified(
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
        states = unread_states(recipient_ids={customer.pk, other_customer.pk, all_read.pk, never_notified.pk})

    assert states == {
        customer.pk: UnreadState(count=2, version=4),
        other_customer.pk: UnreadState(count=1, version=1),
        all_read.pk: UnreadState(count=0, version=3),
    }
    assert states[customer.pk] == live_state(user_id=customer.pk).unread


def test_unread_states_of_nobody_is_empty_without_a_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert unread_states(recipient_ids=set()) == {}
