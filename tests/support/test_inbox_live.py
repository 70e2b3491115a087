"""The staff inbox, live: what posts and read marks publish to `support.inbox`, and who hears it (`chat.inbox`)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.db import transaction

from notifications.groups import user_group
from support.groups import INBOX_GROUP
from support.services import conversation_read
from tests.factories import StaffFactory, UserFactory, place_order
from tests.notifications.conftest import group_members
from tests.notifications.test_consumer import frames_until_quiet, make_user, open_socket, place
from tests.support.conftest import apost, post, send_frame

pytestmark = [pytest.mark.django_db(transaction=True)]

make_staff = sync_to_async(StaffFactory)
read = sync_to_async(conversation_read)


def inbox_changed(order) -> dict:
    return {"type": "chat.inbox_changed", "order": order.pk}


async def inbox_socket(user):
    """A socket of `user` showing the inbox: `chat.inbox` sent and answered."""
    socket, _ = await open_socket(user)
    await socket.send_json_to({"type": "chat.inbox"})
    assert await socket.receive_json_from(timeout=5) == {"type": "chat.inbox_opened"}
    return socket


@sync_to_async
def staff_with(*codenames):
    user = StaffFactory(is_superuser=False)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="support", codename__in=codenames))
    return user


# --- What the services publish --------------------------------------------------------------------


def test_a_message_tells_the_inbox_which_order_changed_after_commit_only(listen):
    customer = UserFactory()
    order = place_order(customer=customer)
    inbox = listen(INBOX_GROUP)

    with transaction.atomic():
        post(customer, order, "Hello")
        assert inbox.receive_nothing(timeout=0.3)  # not before it commits

    assert inbox.receive() == inbox_changed(order)


def test_an_internal_note_tells_the_staff_inbox_and_reaches_no_group_of_the_customer(listen):
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)
    inbox, customer_group = listen(INBOX_GROUP), listen(user_group(customer.pk))

    post(staff, order, "Refund approved, tell them tomorrow", internal=True)

    assert inbox.receive() == inbox_changed(order)  # the count of what staff have not read moved
    assert customer_group.receive_nothing(timeout=0.5)


def test_a_staff_read_mark_tells_the_inbox_and_a_customers_does_not(listen):
    customer, staff = UserFactory(), StaffFactory()
    order = place_order(customer=customer)
    post(customer, order, "one")
    post(staff, order, "two")
    inbox = listen(INBOX_GROUP)

    conversation_read(reader=customer, order_id=order.pk, seq=2)  # no staff count changes
    assert inbox.receive_nothing(timeout=0.5)
    conversation_read(reader=staff, order_id=order.pk, seq=1)
    assert inbox.receive() == inbox_changed(order)
    conversation_read(reader=staff, order_id=order.pk, seq=1)  # the mark is there already: nothing changed
    assert inbox.receive_nothing(timeout=0.5)


# --- chat.inbox on the socket ---------------------------------------------------------------------


async def test_staff_on_the_inbox_hear_of_a_new_message_in_any_conversation():
    staff = await make_staff()
    first, second = await place(), await place()
    socket = await inbox_socket(staff)

    await apost(first.customer, first, "Where is it?")
    assert await socket.receive_json_from(timeout=5) == inbox_changed(first)
    await apost(second.customer, second, "Mine too")
    assert await socket.receive_json_from(timeout=5) == inbox_changed(second)
    await socket.disconnect()


async def test_staff_on_the_inbox_hear_of_a_note_and_of_a_staff_read_mark():
    staff, other_staff = await make_staff(), await make_staff()
    order = await place()
    await apost(order.customer, order, "Where is it?")
    socket = await inbox_socket(staff)

    await apost(other_staff, order, "Carrier ticket 4411", internal=True)
    assert await socket.receive_json_from(timeout=5) == inbox_changed(order)
    await read(reader=other_staff, order_id=order.pk, seq=2)
    assert await socket.receive_json_from(timeout=5) == inbox_changed(order)
    await socket.disconnect()


async def test_a_message_sent_over_a_socket_reaches_the_inbox_of_another_staff_socket():
    staff = await make_staff()
    customer = await make_user()
    order = await place(customer=customer)
    inbox = await inbox_socket(staff)
    customer_socket, _ = await open_socket(customer)

    await customer_socket.send_json_to(send_frame(order.pk, "Hello"))

    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "chat.sent"
    assert await inbox.receive_json_from(timeout=5) == inbox_changed(order)
    await customer_socket.disconnect()
    await inbox.disconnect()


async def test_a_staff_socket_that_did_not_ask_for_the_inbox_hears_none_of_it():
    staff = await make_staff()
    order = await place()
    socket, _ = await open_socket(staff)

    await apost(order.customer, order, "Hello")

    assert [frame for frame in await frames_until_quiet(socket) if frame["type"].startswith("chat.")] == []
    assert await group_members(INBOX_GROUP) == set()
    await socket.disconnect()


async def test_a_customer_asking_for_the_inbox_is_refused_and_joins_nothing():
    customer = await make_user()
    order = await place(customer=customer)
    socket, _ = await open_socket(customer)

    await socket.send_json_to({"type": "chat.inbox"})

    error = await socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "not_allowed")
    assert await group_members(INBOX_GROUP) == set()
    await apost(order.customer, order, "Hello")
    await apost(await make_staff(), order, "Secret note", internal=True)
    assert await frames_until_quiet(socket) == []  # not the inbox's events, and never a note
    await socket.disconnect()


async def test_staff_who_may_not_view_conversations_are_refused():
    socket, _ = await open_socket(await staff_with())

    await socket.send_json_to({"type": "chat.inbox"})

    error = await socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "not_allowed")
    assert await group_members(INBOX_GROUP) == set()
    await socket.disconnect()


async def test_staff_with_the_view_permission_may_show_the_inbox():
    socket = await inbox_socket(await staff_with("view_conversation"))

    assert len(await group_members(INBOX_GROUP)) == 1
    await socket.disconnect()


@pytest.mark.parametrize(
    "extra",
    [{"group": "user_1"}, {"group": "support.order.1"}, {"order": 1}, {"order": "x", "after": -1}],
    ids=["a user's group", "a conversation's group", "an order", "garbage"],
)
async def test_what_else_a_chat_inbox_message_says_joins_no_other_group(extra):
    staff = await make_staff()
    socket, _ = await open_socket(staff)
    before = {group: await group_members(group) for group in ("user_1", "support.order.1")}

    await socket.send_json_to({"type": "chat.inbox", **extra})

    assert await socket.receive_json_from(timeout=5) == {"type": "chat.inbox_opened"}
    assert len(await group_members(INBOX_GROUP)) == 1
    assert {group: await group_members(group) for group in before} == before
    await socket.disconnect()


async def test_asking_twice_joins_once_and_each_change_is_heard_once():
    staff = await make_staff()
    order = await place()
    socket = await inbox_socket(staff)
    await socket.send_json_to({"type": "chat.inbox"})
    assert await socket.receive_json_from(timeout=5) == {"type": "chat.inbox_opened"}

    await apost(order.customer, order, "Hello")

    assert await frames_until_quiet(socket) == [inbox_changed(order)]
    await socket.disconnect()


async def test_a_socket_that_ends_leaves_the_inbox():
    socket = await inbox_socket(await make_staff())
    assert len(await group_members(INBOX_GROUP)) == 1

    await socket.disconnect()

    assert await group_members(INBOX_GROUP) == set()
