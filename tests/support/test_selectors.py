"""The staff inbox's selector: which conversations await a reply, what staff have not read, and the queue's order."""

from datetime import timedelta

import pytest
from django.utils import timezone

from support.models import Message
from support.selectors import INBOX_EXCERPT_LENGTH, inbox, message_excerpt
from support.services import conversation_read
from tests.factories import StaffFactory, UserFactory, place_order
from tests.support.conftest import post

pytestmark = [pytest.mark.django_db]


def rows_by_order(*, awaiting_only=False, max_rows=100):
    return {row.order_id: row for row in inbox(awaiting_only=awaiting_only, max_rows=max_rows).rows}


def order_ids(*, awaiting_only=False, max_rows=100):
    return [row.order_id for row in inbox(awaiting_only=awaiting_only, max_rows=max_rows).rows]


def written_at(message, minutes_ago: int):
    """Date a message back (a queryset update: messages are append-only for the code under test)."""
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))


@pytest.fixture
def customer():
    return UserFactory(first_name="Ada", last_name="Lovelace")


@pytest.fixture
def staff():
    return StaffFactory(first_name="Anna")


@pytest.fixture
def order(customer):
    return place_order(customer=customer)


# --- Awaiting reply ---------------------------------------------------------------------------


def test_a_conversation_whose_last_message_is_the_customers_awaits_a_reply(customer, order):
    post(customer, order, "The parcel says delivered but it isn't here")

    [row] = inbox(awaiting_only=True, max_rows=10).rows

    assert (row.order_id, row.order_number, row.customer_name) == (order.pk, order.number, "Ada Lovelace")
    assert row.awaiting_reply
    assert row.excerpt == "The parcel says delivered but it isn't here"
    assert (row.last_author_name, row.last_message.from_staff) == ("Ada Lovelace", False)
    assert row.waiting_since == row.last_message.created_at


def test_a_staff_reply_answers_it(customer, staff, order):
    post(customer, order, "Where is it?")
    post(staff, order, "On its way")

    row = rows_by_order()[order.pk]

    assert not row.awaiting_reply
    assert row.waiting_since is None
    assert (row.excerpt, row.last_author_name, row.last_message.from_staff) == ("On its way", "Anna", True)
    assert inbox(awaiting_only=True, max_rows=10).rows == []


def test_an_internal_note_is_no_answer_and_never_the_last_message_shown(customer, staff, order):
    post(customer, order, "Where is it?")
    post(staff, order, "Carrier says lost; refund tomorrow", internal=True)

    row = rows_by_order(awaiting_only=True)[order.pk]

    assert row.awaiting_reply
    assert row.excerpt == "Where is it?"
    assert row.last_message.seq == 1


def test_a_conversation_of_notes_only_has_no_last_message_and_awaits_nothing(staff, order):
    post(staff, order, "Customer phoned: will write", internal=True)

    row = rows_by_order()[order.pk]

    assert (row.last_message, row.excerpt, row.last_author_name) == (None, "", "")
    assert not row.awaiting_reply
    assert row.unread == 0


def test_the_customers_message_after_a_reply_awaits_again_since_that_message(customer, staff, order):
    post(customer, order, "Where is it?")
    post(staff, order, "On its way")
    again = post(customer, order, "Still nothing")
    post(customer, order, "Hello?")

    row = rows_by_order()[order.pk]

    assert row.awaiting_reply
    assert row.waiting_since == Message.objects.get(pk=again.pk).created_at
    assert row.excerpt == "Hello?"


# --- Unread counts ------------------------------------------------------------------------------


def test_unread_counts_the_customers_messages_after_the_furthest_staff_read_mark(customer, staff, order):
    other_staff = StaffFactory()
    for body in ("One", "Two", "Three"):
        post(customer, order, body)
    conversation_read(reader=staff, order_id=order.pk, seq=1)
    conversation_read(reader=other_staff, order_id=order.pk, seq=2)
    post(staff, order, "Checking with the carrier", internal=True)

    assert (
        rows_by_order()[order.pk].unread == 1
    )  # "Three", after the furthest mark (2); staff's note is no news to staff


def test_staffs_own_replies_are_never_unread_to_staff(customer, staff, order):
    post(customer, order, "One")
    conversation_read(reader=staff, order_id=order.pk, seq=1)
    post(staff, order, "Answer")
    post(staff, order, "Note", internal=True)

    assert rows_by_order()[order.pk].unread == 0


def test_the_customers_own_read_mark_is_not_staffs(customer, staff, order):
    post(customer, order, "One")
    post(staff, order, "Two")
    conversation_read(reader=customer, order_id=order.pk, seq=2)

    assert rows_by_order()[order.pk].unread == 1  # "One": only a staff member's mark counts


def test_nothing_is_unread_once_staff_read_the_last_message(customer, staff, order):
    post(customer, order, "One")
    note = post(staff, order, "Note", internal=True)
    conversation_read(reader=staff, order_id=order.pk, seq=note.seq)

    assert rows_by_order()[order.pk].unread == 0


def test_each_conversation_counts_its_own_marks(customer, staff, order):
    other_order = place_order()
    post(customer, order, "One")
    post(other_order.customer, other_order, "Other one")
    post(other_order.customer, other_order, "Other two")
    conversation_read(reader=staff, order_id=other_order.pk, seq=1)

    rows = rows_by_order()

    assert (rows[order.pk].unread, rows[other_order.pk].unread) == (1, 1)


# --- The queue's order and its filter --------------------------------------------------------------


def test_awaiting_comes_first_longest_waiting_first_then_the_most_recently_answered(staff):
    orders = {name: place_order() for name in ("new", "old", "older_but_chased", "answered_early", "answered_late")}

    def say(name, body, minutes_ago, author=None):
        order = orders[name]
        written_at(post(author or order.customer, order, body), minutes_ago)

    say("new", "Hi", 5)
    say("old", "Hi", 30)
    say("older_but_chased", "Hi", 40)  # waiting since 40 minutes, whatever it wrote since
    say("older_but_chased", "Hello??", 1)
    say("answered_early", "Hi", 90)
    say("answered_early", "Sorted", 60, author=staff)
    say("answered_late", "Hi", 50)
    say("answered_late", "Sorted", 10, author=staff)

    names = {order.pk: name for name, order in orders.items()}
    assert [names[pk] for pk in order_ids()] == ["older_but_chased", "old", "new", "answered_late", "answered_early"]
    assert [names[pk] for pk in order_ids(awaiting_only=True)] == ["older_but_chased", "old", "new"]


def test_the_queue_is_cut_at_max_rows_and_says_how_many_there_are(customer):
    for _ in range(4):
        post(customer, place_order(customer=customer), "Hi")

    queue = inbox(awaiting_only=True, max_rows=3)

    assert (len(queue.rows), queue.total) == (3, 4)


def test_orders_without_a_conversation_are_not_listed(customer, order):
    place_order(customer=customer)
    post(customer, order, "Hi")

    assert order_ids() == [order.pk]


def test_the_inbox_reads_in_three_queries_however_many_rows(django_assert_num_queries, staff):
    def conversation():
        order = place_order()
        post(order.customer, order, "Hi")
        post(staff, order, "Note", internal=True)
        conversation_read(reader=staff, order_id=order.pk, seq=1)

    conversation()
    with django_assert_num_queries(3):  # the count, the rows, their last messages with their authors
        rows = inbox(awaiting_only=False, max_rows=100).rows
        [(row.excerpt, row.last_author_name, row.customer_name) for row in rows]
    for _ in range(5):
        conversation()
    with django_assert_num_queries(3):
        rows = inbox(awaiting_only=False, max_rows=100).rows
        assert len([(row.excerpt, row.last_author_name, row.customer_name) for row in rows]) == 6


# --- The excerpt ---------------------------------------------------------------------------------------


def test_an_excerpt_is_one_line_cut_with_an_ellipsis():
    assert message_excerpt("First line\n\n  second\tline") == "First line second line"
    long = message_excerpt("word " * 100)
    assert len(long) == INBOX_EXCERPT_LENGTH
    assert long.endswith("word…")
    assert message_excerpt("x" * INBOX_EXCERPT_LENGTH) == "x" * INBOX_EXCERPT_LENGTH
