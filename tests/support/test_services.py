"""Posting and read marks: gapless seqs under concurrency, idempotent retries, the rules, publish after commit."""

import uuid

import pytest
from django.db import transaction

from notifications.groups import user_group
from support.groups import conversation_staff_group
from support.models import Conversation, ConversationRead, Message
from support.rules import ChatRefused
from support.selectors import conversation_open, messages_between
from support.services import conversation_read, message_post
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import StaffFactory, UserFactory, place_order
from tests.support.conftest import post

pytestmark = [requires_postgres(), pytest.mark.django_db(transaction=True)]


def stored(order) -> list[tuple[int, int, bool]]:
    """(seq, public_previous_seq, internal) of the order's messages, in seq order."""
    return list(
        Message.objects.filter(conversation__order=order)
        .order_by("seq")
        .values_list("seq", "public_previous_seq", "internal")
    )


def assert_gapless(order) -> None:
    """Seqs 1..n, and each message names the last customer-visible one before it; the counters agree."""
    rows = stored(order)
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
    last_public = 0
    for seq, public_previous_seq, internal in rows:
        assert public_previous_seq == last_public
        if not internal:
            last_public = seq
    conversation = Conversation.objects.get(order=order)
    assert (conversation.last_seq, conversation.last_public_seq) == (len(rows), last_public)


# --- Seqs under concurrency --------------------------------------------------------------------


def test_first_messages_posted_at_once_create_one_conversation_and_take_seqs_without_gaps():
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)

    outcomes = run_concurrently(post, [(customer if i % 2 else staff, order, f"message {i}") for i in range(8)])

    assert all(isinstance(outcome, Message) for outcome in outcomes), outcomes
    assert Conversation.objects.count() == 1
    assert sorted(outcome.seq for outcome in outcomes) == list(range(1, 9))
    assert_gapless(order)


def test_notes_and_messages_posted_at_once_keep_both_sides_sequences_straight():
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)
    post(customer, order, "first")

    run_concurrently(
        lambda author, internal: post(author, order, "x", internal=internal),
        [(staff, True), (customer, False), (staff, False), (staff, True), (customer, False), (staff, True)],
    )

    assert len(stored(order)) == 7
    assert_gapless(order)


def test_retries_of_one_send_at_once_store_one_message_and_all_get_it():
    customer = UserFactory()
    order = place_order(customer=customer)
    client_id = uuid.uuid4()

    outcomes = run_concurrently(
        lambda: message_post(author=customer, order_id=order.pk, body="Hello?", client_id=client_id), [()] * 6
    )

    assert {outcome.message.pk for outcome in outcomes} == {Message.objects.get().pk}
    assert sorted(outcome.created for outcome in outcomes) == [False] * 5 + [True]


def test_a_rolled_back_post_gives_its_seq_back():
    customer = UserFactory()
    order = place_order(customer=customer)
    post(customer, order, "one")

    with pytest.raises(RuntimeError), transaction.atomic():
        post(customer, order, "two")
        raise RuntimeError("the request failed after posting")

    assert post(customer, order, "two again").seq == 2
    assert_gapless(order)


# --- What each costs ----------------------------------------------------------------------------


def test_a_post_to_a_conversation_costs_five_queries_and_the_first_two_more(django_assert_num_queries):
    customer = UserFactory()
    order = place_order(customer=customer)

    # BEGIN, the order, the locked conversation (the first: not there, inserted, then read), the client_id, the
    # counters, the row, COMMIT.
    with django_assert_num_queries(9):
        post(customer, order, "first")
    with django_assert_num_queries(7):
        post(customer, order, "second")


def test_a_sockets_gap_is_filled_in_one_query(django_assert_num_queries):
    customer = UserFactory()
    order = place_order(customer=customer)
    for body in "abc":
        post(customer, order, body)

    with django_assert_num_queries(1):
        missed = messages_between(order_id=order.pk, after_seq=0, before_seq=3, staff_view=False)
        assert [(message.seq, message.author.get_username()) for message in missed] == [
            (1, customer.get_username()),
            (2, customer.get_username()),
        ]


def test_opening_a_conversation_costs_four_queries(django_assert_num_queries):
    customer = UserFactory()
    order = place_order(customer=customer)
    for body in "abc":
        post(customer, order, body)

    # The order, the conversation, its messages with their authors, the read marks.
    with django_assert_num_queries(4):
        opening = conversation_open(viewer=customer, order_id=order.pk, after=0, max_backlog=200)
    assert [message.seq for message in opening.messages] == [1, 2, 3]


# --- Rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "stored_as"),
    [
        ("Hello", "Hello"),
        ("  padded \n", "padded"),
        ("two\r\nlines\rhere", "two\nlines\nhere"),
        ("tab\tinside", "tab\tinside"),
        ("<b>markup</b> stays text", "<b>markup</b> stays text"),
        ("x" * 2000, "x" * 2000),
        (" " * 10 + "y" * 2000 + "\n" * 10, "y" * 2000),  # the limit counts what is left after trimming
        ("é" * 2000, "é" * 2000),
    ],
)
def test_a_body_is_stored_trimmed_with_newlines_as_lf(body, stored_as):
    customer = UserFactory()
    order = place_order(customer=customer)
    assert post(customer, order, body).body == stored_as


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "empty_body"),
        (" \n\t ", "empty_body"),
        ("x" * 2001, "body_too_long"),
        ("nul\x00", "invalid_body"),
        ("escape \x1b[31m", "invalid_body"),
        ("delete \x7f", "invalid_body"),
        ("lone \udc00", "invalid_body"),
        (None, "invalid_field"),
        (12, "invalid_field"),
    ],
)
def test_a_body_outside_the_rules_is_refused_and_nothing_is_stored(body, code):
    customer = UserFactory()
    order = place_order(customer=customer)
    with pytest.raises(ChatRefused) as refused:
        message_post(author=customer, order_id=order.pk, body=body, client_id=uuid.uuid4())
    assert refused.value.code == code
    assert not Conversation.objects.exists()


def test_only_the_orders_customer_and_staff_may_post():
    customer, stranger, staff = UserFactory(), UserFactory(), StaffFactory()
    order = place_order(customer=customer)

    assert post(customer, order).author_id == customer.pk
    assert post(staff, order).author_id == staff.pk
    with pytest.raises(ChatRefused) as refused:
        post(stranger, order)

    assert refused.value.code == "unknown_order"
    assert Message.objects.count() == 2


def test_a_message_keeps_the_side_its_author_was_on_when_it_was_written():
    staff = StaffFactory()
    order = place_order()
    message = post(staff, order, "We'll check")
    staff.is_staff = False
    staff.save(update_fields=["is_staff"])

    message.refresh_from_db()
    assert message.from_staff


def test_messages_are_append_only():
    customer = UserFactory()
    message = post(customer, place_order(customer=customer))
    message.body = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        message.save()


# --- Read marks ---------------------------------------------------------------------------------


def test_a_read_mark_only_moves_forward():
    customer = UserFactory()
    order = place_order(customer=customer)
    for body in ("one", "two", "three"):
        post(StaffFactory(), order, body)

    assert conversation_read(reader=customer, order_id=order.pk, seq=2) == 2
    assert conversation_read(reader=customer, order_id=order.pk, seq=1) is None
    assert conversation_read(reader=customer, order_id=order.pk, seq=2) is None
    assert conversation_read(reader=customer, order_id=order.pk, seq=3) == 3
    assert ConversationRead.objects.get().last_read_seq == 3


def test_concurrent_read_marks_end_at_the_highest():
    customer = UserFactory()
    order = place_order(customer=customer)
    for _ in range(6):
        post(customer, order)

    run_concurrently(
        lambda seq: conversation_read(reader=customer, order_id=order.pk, seq=seq), [(s,) for s in (3, 6, 1, 5, 2, 4)]
    )

    assert ConversationRead.objects.get().last_read_seq == 6


# --- Publishing -----------------------------------------------------------------------------------


def test_a_message_is_published_to_the_customer_and_staff_after_commit_only(listen):
    customer = UserFactory()
    order = place_order(customer=customer)
    customer_group, staff_group = listen(user_group(customer.pk)), listen(conversation_staff_group(order.pk))

    with transaction.atomic():
        post(customer, order, "Hello")
        assert customer_group.receive_nothing(timeout=0.3)  # not before it commits

    for group in (customer_group, staff_group):
        event = group.receive()
        assert (event["type"], event["order"], event["message"]["body"]) == ("chat.message", order.pk, "Hello")


def test_a_rolled_back_message_is_never_published(listen):
    customer = UserFactory()
    order = place_order(customer=customer)
    staff_group = listen(conversation_staff_group(order.pk))

    with pytest.raises(RuntimeError), transaction.atomic():
        post(customer, order, "Hello")
        raise RuntimeError("rolled back")

    assert staff_group.receive_nothing(timeout=0.5)


def test_an_internal_note_is_published_to_staff_and_to_no_group_of_the_customer(listen):
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)
    customer_group, staff_group = listen(user_group(customer.pk)), listen(conversation_staff_group(order.pk))

    post(staff, order, "Courier says porch", internal=True)

    assert staff_group.receive()["message"]["internal"] is True
    assert customer_group.receive_nothing(timeout=0.5)


def test_a_staff_read_mark_reaches_the_customer_as_of_the_last_message_they_can_see(listen):
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)
    post(customer, order, "one")
    post(staff, order, "note", internal=True)
    customer_group = listen(user_group(customer.pk))

    conversation_read(reader=staff, order_id=order.pk, seq=2)

    event = customer_group.receive()
    assert (event["type"], event["frame"]["seq"], event["staff_only"]) == ("chat.read", 1, False)
