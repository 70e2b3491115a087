"""Chat on the notifications socket: send and ack, ordered delivery, authorization, notes, read marks, bad input."""

import asyncio
import json
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction

from notifications.groups import user_group
from orders.models import OrderStatus
from orders.transitions import order_transition
from support.models import Conversation, ConversationRead, Message
from support.services import message_deliveries
from tests.factories import StaffFactory
from tests.notifications.test_consumer import frames_until_quiet, make_user, open_socket, place
from tests.support.conftest import apost, post, post_without_publishing, send_frame

pytestmark = [pytest.mark.django_db(transaction=True)]

make_staff = sync_to_async(StaffFactory)
count_messages = sync_to_async(Message.objects.count)


async def opened(socket, order, *, after=0) -> tuple[dict, list[dict]]:
    """Open the order's conversation on `socket`: its chat.opened frame and the backlog that follows."""
    await socket.send_json_to({"type": "chat.open", "order": order.pk, "after": after})
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == "chat.opened", frame
    return frame, await frames_until_quiet(socket)


async def order_with_sockets(*, staff_sockets=1):
    """A customer's order, the customer's socket and staff sockets, all watching its conversation."""
    customer = await make_user()
    order = await place(customer=customer)
    staff = await make_staff(first_name="Anna")
    customer_socket, _ = await open_socket(customer)
    await opened(customer_socket, order)
    staff_side = []
    for _ in range(staff_sockets):
        socket, _ = await open_socket(staff)
        await opened(socket, order)
        staff_side.append(socket)
    # The customer's page is told that staff now view it (presence: tests/support/test_presence.py).
    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "chat.presence"
    return customer, order, staff, customer_socket, staff_side


async def disconnect(*sockets):
    for socket in sockets:
        await socket.disconnect()


def messages_only(frames: list[dict]) -> list[dict]:
    """The frames but presence (the staff's socket opening the conversation shows in `chat.presence`)."""
    return [frame for frame in frames if frame["type"] != "chat.presence"]


def seqs(frames: list[dict]) -> list[int]:
    return [frame["message"]["seq"] for frame in frames if frame["type"] in ("chat.message", "chat.sent")]


# --- Send and ack -----------------------------------------------------------------------------


async def test_a_send_is_stored_then_acked_with_the_stored_message_and_reaches_the_other_side():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    client_id = uuid.uuid4()

    await customer_socket.send_json_to(
        send_frame(order.pk, "  The parcel says delivered\r\nbut it isn't here ", client_id)
    )

    sent = await customer_socket.receive_json_from(timeout=5)
    assert sent["type"] == "chat.sent"
    assert (sent["order"], sent["client_id"]) == (order.pk, str(client_id))
    message = sent["message"]
    assert (message["seq"], message["body"], message["internal"]) == (
        1,
        "The parcel says delivered\nbut it isn't here",
        False,
    )
    assert message["author"] == {"name": customer.get_full_name(), "is_staff": False}
    received = await staff_socket.receive_json_from(timeout=5)
    assert received == {"type": "chat.message", "order": order.pk, "previous_seq": 0, "message": message}
    stored = await sync_to_async(Message.objects.get)()
    assert (stored.seq, stored.body, stored.author_id, stored.client_id) == (1, message["body"], customer.pk, client_id)
    # The sender's own socket had it as the ack: its live copy is not sent again.
    assert await customer_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket)


async def test_every_socket_of_every_participant_watching_receives_the_message():
    customer, order, staff, customer_socket, staff_sockets = await order_with_sockets(staff_sockets=2)
    second_tab, _ = await open_socket(customer)
    await opened(second_tab, order)

    await staff_sockets[0].send_json_to(send_frame(order.pk, "We are on it"))

    assert (await staff_sockets[0].receive_json_from(timeout=5))["type"] == "chat.sent"
    for socket in (customer_socket, second_tab, staff_sockets[1]):
        frame = await socket.receive_json_from(timeout=5)
        assert (frame["type"], frame["message"]["body"]) == ("chat.message", "We are on it")
        assert frame["message"]["author"] == {"name": "Anna", "is_staff": True}
    await disconnect(customer_socket, second_tab, *staff_sockets)


async def test_a_socket_that_did_not_open_the_conversation_is_sent_none_of_it():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    elsewhere, _ = await open_socket(customer)  # another page of the shop

    await staff_socket.send_json_to(send_frame(order.pk))

    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "chat.message"
    assert await elsewhere.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket, elsewhere)


async def beside_the_socket(function, **kwargs):
    """Run `function` in a thread of its own: the sockets' database thread is busy waiting for a lock."""

    def run():
        try:
            return function(**kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(run)


async def test_a_status_notification_reaches_the_socket_while_its_own_send_waits_for_the_database():
    """Chat must not starve notifications: a post waiting on the database holds up nothing else on its socket."""
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await apost(customer, order, "First")
    await frames_until_quiet(customer_socket)
    locked, release = threading.Event(), threading.Event()

    def hold_the_conversation():  # another transaction holds the row every post to it must lock
        with transaction.atomic():
            Conversation.objects.select_for_update().get(order=order)
            locked.set()
            release.wait(timeout=30)
        connection.close()

    holder = threading.Thread(target=hold_the_conversation)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        await customer_socket.send_json_to(send_frame(order.pk, "Where is it?"))
        await beside_the_socket(order_transition, order_id=order.pk, to_status=OrderStatus.PAID)

        frame = await customer_socket.receive_json_from(timeout=5)  # while the post still waits
        assert (frame["type"], frame["kind"], frame["order"]["status"]) == (
            "notification",
            "order.status_changed",
            "paid",
        )
        assert await beside_the_socket(Message.objects.count) == 1
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 30)
    sent = await customer_socket.receive_json_from(timeout=5)
    assert (sent["type"], sent["message"]["seq"], sent["message"]["body"]) == ("chat.sent", 2, "Where is it?")
    await disconnect(customer_socket, staff_socket)


async def test_a_send_without_opening_the_conversation_is_acked_and_starts_it():
    customer = await make_user()
    order = await place(customer=customer)
    socket, _ = await open_socket(customer)

    await socket.send_json_to(send_frame(order.pk, "First!"))

    sent = await socket.receive_json_from(timeout=5)
    assert (sent["type"], sent["message"]["seq"]) == ("chat.sent", 1)
    assert await sync_to_async(Conversation.objects.filter(order=order).exists)()
    await socket.disconnect()


async def test_a_retried_send_with_the_same_client_id_stores_one_message_and_acks_both():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    retry_socket, _ = await open_socket(customer)  # the page reconnected and sends it again
    frame = send_frame(order.pk, "Hello?")

    await customer_socket.send_json_to(frame)
    first = await customer_socket.receive_json_from(timeout=5)
    await retry_socket.send_json_to(frame)
    second = await retry_socket.receive_json_from(timeout=5)

    assert first["type"] == second["type"] == "chat.sent"
    assert first["message"] == second["message"]
    assert await count_messages() == 1
    assert seqs(await frames_until_quiet(staff_socket)) == [1]  # the other side hears of it once
    await disconnect(customer_socket, staff_socket, retry_socket)


async def test_a_retry_of_a_send_whose_publish_was_lost_delivers_it_to_the_other_side_once():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    client_id = uuid.uuid4()
    # Stored, then its process died before publishing, and before the page got its chat.sent.
    await sync_to_async(post_without_publishing)(customer, order, "Hello?", client_id=client_id)
    assert await staff_socket.receive_nothing(timeout=0.3)

    await customer_socket.send_json_to(send_frame(order.pk, "Hello?", client_id))

    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "chat.sent"
    assert seqs(await frames_until_quiet(staff_socket)) == [1]
    assert await count_messages() == 1
    await disconnect(customer_socket, staff_socket)


async def test_the_same_client_id_for_another_body_is_refused_and_nothing_is_stored():
    customer = await make_user()
    order = await place(customer=customer)
    socket, _ = await open_socket(customer)
    client_id = uuid.uuid4()
    await socket.send_json_to(send_frame(order.pk, "One", client_id))
    assert (await socket.receive_json_from(timeout=5))["type"] == "chat.sent"

    await socket.send_json_to(send_frame(order.pk, "Two", client_id))

    error = await socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"], error["client_id"]) == ("error", "client_id_reused", str(client_id))
    assert await count_messages() == 1
    await socket.disconnect()


async def test_two_authors_may_choose_the_same_client_id():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    client_id = uuid.uuid4()

    await customer_socket.send_json_to(send_frame(order.pk, "Hi", client_id))
    await staff_socket.send_json_to(send_frame(order.pk, "Hello", client_id))

    # Each side's own send confirmed, and the other's message: in whichever order the two sends were handled.
    for socket in (customer_socket, staff_socket):
        assert {f["type"] for f in await frames_until_quiet(socket)} == {"chat.message", "chat.sent"}
    assert await count_messages() == 2
    await disconnect(customer_socket, staff_socket)


# --- Opening, ordering, gaps ------------------------------------------------------------------


async def test_open_replays_the_messages_after_the_seq_given_in_order_then_live_ones():
    customer = await make_user()
    order = await place(customer=customer)
    staff = await make_staff()
    for body in ("one", "two", "three"):
        await apost(staff, order, body)
    socket, _ = await open_socket(customer)

    header, backlog = await opened(socket, order, after=1)

    assert header == {
        "type": "chat.opened",
        "order": order.pk,
        "last_seq": 3,
        "reset": False,
        "truncated": False,
        "read": {"customer": 0, "staff": 0},
        "presence": {"customer_online": True, "staff_viewing": False},
    }
    assert [(f["message"]["seq"], f["message"]["body"], f["previous_seq"]) for f in backlog] == [
        (2, "two", 1),
        (3, "three", 2),
    ]
    await apost(staff, order, "four")
    assert seqs([await socket.receive_json_from(timeout=5)]) == [4]
    await socket.disconnect()


async def test_opening_an_order_with_no_conversation_yet_sends_an_empty_one():
    customer = await make_user()
    order = await place(customer=customer)
    socket, _ = await open_socket(customer)

    header, backlog = await opened(socket, order)

    assert (header["last_seq"], header["reset"], backlog) == (0, False, [])
    assert not await sync_to_async(Conversation.objects.exists)()  # opening creates nothing
    await socket.disconnect()


async def test_an_after_past_any_seq_issued_is_a_reset_and_the_whole_conversation():
    customer = await make_user()
    order = await place(customer=customer)
    await apost(customer, order, "one")
    socket, _ = await open_socket(customer)

    header, backlog = await opened(socket, order, after=7)

    assert (header["reset"], header["last_seq"], seqs(backlog)) == (True, 1, [1])
    await socket.disconnect()


async def test_a_backlog_over_the_maximum_sends_the_newest_and_says_it_was_truncated(settings):
    settings.CHAT_MAX_BACKLOG = 2
    customer = await make_user()
    order = await place(customer=customer)
    for body in "abcd":
        await apost(customer, order, body)
    socket, _ = await open_socket(customer)

    header, backlog = await opened(socket, order)

    assert (header["truncated"], header["last_seq"], seqs(backlog)) == (True, 4, [3, 4])
    await socket.disconnect()


async def test_live_messages_racing_the_backlog_arrive_once_in_order_without_gaps():
    customer = await make_user()
    order = await place(customer=customer)
    staff = await make_staff()
    for body in ("a", "b", "c"):
        await apost(staff, order, body)
    socket, _ = await open_socket(customer)

    # Open while three more commit and publish from other threads (other processes' requests).
    posting = asyncio.gather(*(sync_to_async(post, thread_sensitive=False)(staff, order, b) for b in "def"))
    await socket.send_json_to({"type": "chat.open", "order": order.pk, "after": 0})
    frames = await frames_until_quiet(socket)
    await posting
    frames += await frames_until_quiet(socket)

    assert frames[0]["type"] == "chat.opened"
    assert seqs(frames[1:]) == [1, 2, 3, 4, 5, 6]
    assert all(frame["previous_seq"] == frame["message"]["seq"] - 1 for frame in frames[1:])
    await socket.disconnect()


async def test_a_lost_publish_is_filled_from_the_database_before_the_next_message():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()

    await sync_to_async(post_without_publishing)(staff, order, "lost")
    await apost(staff, order, "after it")

    frames = await frames_until_quiet(customer_socket)
    assert [(f["message"]["seq"], f["message"]["body"]) for f in frames] == [(1, "lost"), (2, "after it")]
    await disconnect(customer_socket, staff_socket)


async def test_a_send_acked_after_a_message_this_socket_missed_sends_the_missed_one_first():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await sync_to_async(post_without_publishing)(staff, order, "lost")

    await customer_socket.send_json_to(send_frame(order.pk, "mine"))

    frames = await frames_until_quiet(customer_socket)
    assert [(f["type"], f["message"]["seq"]) for f in frames] == [("chat.message", 1), ("chat.sent", 2)]
    await disconnect(customer_socket, staff_socket)


async def test_a_message_on_another_order_of_the_customer_is_not_sent_to_a_socket_watching_this_one():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    other_order = await place(customer=customer)
    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "order_placed"  # My orders lists it

    await apost(staff, other_order, "about the other one")

    assert await customer_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket)


# --- Authorization ----------------------------------------------------------------------------


async def test_a_customer_naming_another_customers_order_is_refused_and_nothing_is_stored_or_sent():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await apost(customer, order, "mine")
    await frames_until_quiet(staff_socket)
    await frames_until_quiet(customer_socket)
    intruder = await make_user()
    intruder_socket, _ = await open_socket(intruder)

    for request in (
        send_frame(order.pk, "let me in"),
        {"type": "chat.open", "order": order.pk, "after": 0},
        {"type": "chat.read", "order": order.pk, "seq": 1},
    ):
        await intruder_socket.send_json_to(request)
        error = await intruder_socket.receive_json_from(timeout=5)
        assert (error["type"], error["code"], error["order"]) == ("error", "unknown_order", order.pk)

    assert await count_messages() == 1
    assert not await sync_to_async(ConversationRead.objects.exists)()
    assert await staff_socket.receive_nothing(timeout=0.3)
    assert await customer_socket.receive_nothing(timeout=0.1)
    # Watching was refused: the conversation's next message does not reach the intruder.
    await apost(staff, order, "to the customer")
    assert await intruder_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket, intruder_socket)


async def test_an_unknown_order_is_refused_like_another_customers():
    customer = await make_user()
    socket, _ = await open_socket(customer)

    await socket.send_json_to(send_frame(987654))

    error = await socket.receive_json_from(timeout=5)
    assert (error["code"], error["order"]) == ("unknown_order", 987654)
    assert not await sync_to_async(Conversation.objects.exists)()
    await socket.disconnect()


async def test_staff_may_open_and_post_in_any_customers_conversation():
    customer = await make_user()
    order = await place(customer=customer)
    await apost(customer, order, "help")
    staff = await make_staff()
    socket, _ = await open_socket(staff)

    _, backlog = await opened(socket, order)
    await socket.send_json_to(send_frame(order.pk, "Here"))

    assert seqs(backlog) == [1]
    assert seqs([await socket.receive_json_from(timeout=5)]) == [2]
    await socket.disconnect()


# --- Internal notes ---------------------------------------------------------------------------


async def test_an_internal_note_reaches_every_staff_socket_and_no_socket_of_the_customer():
    customer, order, staff, customer_socket, staff_sockets = await order_with_sockets(staff_sockets=2)

    await staff_sockets[0].send_json_to(send_frame(order.pk, "Courier says porch", internal=True))

    sent = await staff_sockets[0].receive_json_from(timeout=5)
    assert (sent["type"], sent["message"]["internal"]) == ("chat.sent", True)
    note = await staff_sockets[1].receive_json_from(timeout=5)
    assert (note["type"], note["message"]["body"], note["message"]["internal"]) == (
        "chat.message",
        "Courier says porch",
        True,
    )
    assert await customer_socket.receive_nothing(timeout=0.5)
    await disconnect(customer_socket, *staff_sockets)


async def test_a_customer_is_never_sent_a_note_even_on_a_channel_it_would_hear():
    """Defence in depth: a note published to the customer's group by mistake is dropped by their socket."""
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    note = await apost(staff, order, "internal", internal=True)
    await frames_until_quiet(staff_socket)
    [(_, event)] = await sync_to_async(message_deliveries)(note, order=order)
    await get_channel_layer().group_send(user_group(customer.pk), event)

    assert await customer_socket.receive_nothing(timeout=0.5)
    await disconnect(customer_socket, staff_socket)


async def test_a_customers_history_and_live_sequence_skip_notes_and_say_so_without_a_gap():
    customer = await make_user()
    order = await place(customer=customer)
    staff = await make_staff()
    await apost(customer, order, "one")
    await apost(staff, order, "note", internal=True)
    await apost(staff, order, "three")
    customer_socket, _ = await open_socket(customer)
    staff_socket, _ = await open_socket(staff)

    customer_header, customer_backlog = await opened(customer_socket, order)
    staff_header, staff_backlog = await opened(staff_socket, order)
    await apost(staff, order, "note again", internal=True)
    await apost(staff, order, "five")

    customer_frames = customer_backlog + messages_only(await frames_until_quiet(customer_socket))
    staff_frames = staff_backlog + await frames_until_quiet(staff_socket)
    assert [(f["message"]["seq"], f["previous_seq"]) for f in customer_frames] == [(1, 0), (3, 1), (5, 3)]
    assert all(not frame["message"]["internal"] for frame in customer_frames)
    assert "note" not in json.dumps(customer_frames)
    assert [(f["message"]["seq"], f["previous_seq"]) for f in staff_frames] == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]
    assert (customer_header["last_seq"], staff_header["last_seq"]) == (3, 3)
    await disconnect(customer_socket, staff_socket)


async def test_a_customer_cannot_write_an_internal_note():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()

    await customer_socket.send_json_to(send_frame(order.pk, "secret", internal=True))

    assert (await customer_socket.receive_json_from(timeout=5))["code"] == "not_allowed"
    assert await count_messages() == 0
    assert await staff_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket)


# --- Read receipts ----------------------------------------------------------------------------


async def test_a_read_mark_tells_the_other_side_and_moves_only_forward():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await apost(staff, order, "one")
    await apost(staff, order, "two")
    await frames_until_quiet(customer_socket)
    await frames_until_quiet(staff_socket)

    await customer_socket.send_json_to({"type": "chat.read", "order": order.pk, "seq": 2})

    receipt = {
        "type": "chat.read",
        "order": order.pk,
        "seq": 2,
        "reader": {"name": customer.get_full_name(), "is_staff": False},
    }
    assert await staff_socket.receive_json_from(timeout=5) == receipt
    assert await customer_socket.receive_json_from(timeout=5) == receipt  # the customer's other tabs keep up
    await customer_socket.send_json_to({"type": "chat.read", "order": order.pk, "seq": 1})
    assert await staff_socket.receive_nothing(timeout=0.3)
    header, _ = await opened(staff_socket, order, after=2)
    assert header["read"] == {"customer": 2, "staff": 0}
    await disconnect(customer_socket, staff_socket)


async def test_a_staff_read_mark_reaches_the_customer_as_of_the_last_message_they_can_see():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await apost(customer, order, "one")
    await apost(staff, order, "note", internal=True)
    await frames_until_quiet(customer_socket)
    await frames_until_quiet(staff_socket)

    await staff_socket.send_json_to({"type": "chat.read", "order": order.pk, "seq": 2})

    assert (await customer_socket.receive_json_from(timeout=5))["seq"] == 1
    assert (await staff_socket.receive_json_from(timeout=5))["seq"] == 2
    header, _ = await opened(customer_socket, order, after=1)
    assert header["read"] == {"customer": 0, "staff": 1}
    await disconnect(customer_socket, staff_socket)


async def test_a_customer_cannot_mark_read_past_the_last_message_they_can_see():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await apost(customer, order, "one")
    await apost(staff, order, "note", internal=True)

    await customer_socket.send_json_to({"type": "chat.read", "order": order.pk, "seq": 2})

    frames = await frames_until_quiet(customer_socket)
    assert [(f["type"], f.get("code")) for f in frames] == [("chat.message", None), ("error", "invalid_seq")]
    assert not await sync_to_async(ConversationRead.objects.exists)()
    await disconnect(customer_socket, staff_socket)


# --- Bad input and limits ---------------------------------------------------------------------

UUID = "0b7d1c5e-8a4f-4f57-9a51-4d5d3c0e6a11"
ORDER, ORDER_AS_TEXT = "<the order's id>", "<the order's id as text>"  # filled in once the order exists


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "chat.send", "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER_AS_TEXT, "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": 0, "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": True, "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": 1.5, "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": 2**63, "body": "x", "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": 2**63 - 1, "body": "x", "client_id": UUID}, "unknown_order"),
        ({"type": "chat.open", "order": 2**63 - 1, "after": 2**63 - 1}, "unknown_order"),
        ({"type": "chat.send", "order": ORDER, "body": "x"}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": "not-a-uuid"}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": UUID.replace("-", "")}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": 12}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": UUID.upper()}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": "{" + UUID[1:-1] + "}"}, "invalid_field"),
        (
            {"type": "chat.send", "order": ORDER, "body": "x", "client_id": "----" + UUID.replace("-", "")},
            "invalid_field",
        ),
        ({"type": "chat.send", "order": ORDER, "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": 7, "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": ["x"], "client_id": UUID}, "invalid_field"),
        ({"type": "chat.send", "order": ORDER, "body": "", "client_id": UUID}, "empty_body"),
        ({"type": "chat.send", "order": ORDER, "body": " \n\t\r\n ", "client_id": UUID}, "empty_body"),
        ({"type": "chat.send", "order": ORDER, "body": "x" * 2001, "client_id": UUID}, "body_too_long"),
        ({"type": "chat.send", "order": ORDER, "body": "nul \x00 in it", "client_id": UUID}, "invalid_body"),
        ({"type": "chat.send", "order": ORDER, "body": "bell \x07", "client_id": UUID}, "invalid_body"),
        ({"type": "chat.send", "order": ORDER, "body": "half \ud800 a pair", "client_id": UUID}, "invalid_body"),
        ({"type": "chat.send", "order": ORDER, "body": "x", "client_id": UUID, "internal": "yes"}, "invalid_field"),
        ({"type": "chat.open", "after": 0}, "invalid_field"),
        ({"type": "chat.open", "order": ORDER, "after": -1}, "invalid_field"),
        ({"type": "chat.open", "order": ORDER, "after": "3"}, "invalid_field"),
        ({"type": "chat.read", "order": ORDER}, "invalid_field"),
        ({"type": "chat.read", "order": ORDER, "seq": 0}, "invalid_field"),
        ({"type": "chat.read", "order": ORDER, "seq": 1}, "invalid_seq"),  # nothing to read yet
        ({"type": "chat.close"}, "invalid_field"),
        ({"type": "chat.typo", "order": ORDER}, "unknown_type"),
    ],
)
async def test_bad_input_is_an_error_frame_with_nothing_stored_or_sent_and_the_socket_stays_usable(message, code):
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    fill = {ORDER: order.pk, ORDER_AS_TEXT: str(order.pk)}
    message = {key: fill.get(value, value) if isinstance(value, str) else value for key, value in message.items()}

    await customer_socket.send_json_to(message)

    error = await customer_socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", code), error
    assert error["detail"]
    assert await count_messages() == 0
    assert not await sync_to_async(ConversationRead.objects.exists)()
    assert await staff_socket.receive_nothing(timeout=0.3)
    await customer_socket.send_json_to({"type": "ping"})
    assert await customer_socket.receive_json_from(timeout=5) == {"type": "pong"}
    await disconnect(customer_socket, staff_socket)


async def test_a_body_of_2000_characters_fits_in_one_message_however_the_client_escapes_it():
    customer = await make_user()
    order = await place(customer=customer)
    socket, _ = await open_socket(customer)
    body = "😀" * 2000  # twelve characters each as JSON escapes them: \ud83d\ude00

    await socket.send_to(text_data=json.dumps(send_frame(order.pk, body), ensure_ascii=True))

    sent = await socket.receive_json_from(timeout=5)
    assert (sent["type"], sent["message"]["body"]) == ("chat.sent", body)
    await socket.disconnect()


async def test_sends_over_the_users_chat_limit_are_refused_on_every_socket_and_not_stored(settings):
    settings.CHAT_SEND_RATE_LIMIT = "2/minute"
    customer = await make_user()
    order = await place(customer=customer)
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)

    for socket in (first, second):
        await socket.send_json_to(send_frame(order.pk))
        assert (await socket.receive_json_from(timeout=5))["type"] == "chat.sent"
    over = send_frame(order.pk, "third")
    await first.send_json_to(over)

    error = await first.receive_json_from(timeout=5)
    assert (error["code"], error["client_id"], error["order"]) == ("rate_limited", over["client_id"], order.pk)
    assert await count_messages() == 2
    await first.send_json_to({"type": "ping"})
    assert await first.receive_json_from(timeout=5) == {"type": "pong"}  # the socket stays open
    await disconnect(first, second)


async def test_a_socket_watches_at_most_the_conversations_allowed_and_closing_one_makes_room(settings):
    settings.CHAT_CONVERSATIONS_PER_SOCKET = 1
    customer = await make_user()
    first_order, second_order = await place(customer=customer), await place(customer=customer)
    socket, _ = await open_socket(customer)
    await opened(socket, first_order)

    await socket.send_json_to({"type": "chat.open", "order": second_order.pk})
    error = await socket.receive_json_from(timeout=5)
    assert (error["code"], error["order"]) == ("too_many_conversations", second_order.pk)
    await opened(socket, first_order)  # opening one it watches again is no more

    await socket.send_json_to({"type": "chat.close", "order": first_order.pk})
    await opened(socket, second_order)
    await apost(customer, first_order, "not watched any more")
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()
