"""Typing in a conversation: relayed to the other side only, never stored, throttled, and only where watched."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from support.models import Conversation, Message
from support.socket import TYPING_RELAY_INTERVAL
from tests.notifications.test_consumer import frames_until_quiet, make_user, open_socket, place
from tests.support.test_consumer import disconnect, opened, order_with_sockets

pytestmark = [pytest.mark.django_db(transaction=True)]


def typing(order_id) -> dict:
    return {"type": "chat.typing", "order": order_id}


async def test_a_customers_typing_reaches_the_staff_watching_and_not_the_customers_own_sockets():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    second_tab, _ = await open_socket(customer)
    await opened(second_tab, order)

    await customer_socket.send_json_to(typing(order.pk))

    assert await staff_socket.receive_json_from(timeout=5) == {
        "type": "chat.typing",
        "order": order.pk,
        "author": {"name": customer.get_full_name(), "is_staff": False},
        "expires_in": 5,
    }
    assert await customer_socket.receive_nothing(timeout=0.3)
    assert await second_tab.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, second_tab, staff_socket)


async def test_a_staff_members_typing_reaches_the_customer_and_not_other_staff():
    customer, order, staff, customer_socket, staff_sockets = await order_with_sockets(staff_sockets=2)

    await staff_sockets[0].send_json_to(typing(order.pk))

    assert await customer_socket.receive_json_from(timeout=5) == {
        "type": "chat.typing",
        "order": order.pk,
        "author": {"name": "Anna", "is_staff": True},
        "expires_in": 5,
    }
    for socket in staff_sockets:
        assert await socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, *staff_sockets)


async def test_typing_reaches_only_sockets_watching_that_conversation():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    other_order = await place(customer=customer)
    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "order_placed"  # My orders lists it
    elsewhere, _ = await open_socket(customer)  # another page of the shop
    on_another_order, _ = await open_socket(customer)
    await opened(on_another_order, other_order)

    await staff_socket.send_json_to(typing(order.pk))

    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "chat.typing"
    assert await elsewhere.receive_nothing(timeout=0.3)
    assert await on_another_order.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket, elsewhere, on_another_order)


async def test_typing_is_never_stored():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()

    await customer_socket.send_json_to(typing(order.pk))

    assert (await staff_socket.receive_json_from(timeout=5))["type"] == "chat.typing"
    assert await sync_to_async(Message.objects.count)() == 0
    assert not await sync_to_async(Conversation.objects.filter(order=order).exists)()
    await disconnect(customer_socket, staff_socket)


async def test_typing_carries_how_long_to_show_it_from_the_setting(settings):
    settings.CHAT_TYPING_SECONDS = 3
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()

    await customer_socket.send_json_to(typing(order.pk))

    assert (await staff_socket.receive_json_from(timeout=5))["expires_in"] == 3
    await disconnect(customer_socket, staff_socket)


async def test_a_burst_of_typing_is_relayed_once_then_again_after_the_interval():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    loop = asyncio.get_running_loop()

    for _ in range(5):
        await customer_socket.send_json_to(typing(order.pk))
    first_relayed_at = loop.time()
    relayed = await frames_until_quiet(staff_socket)
    assert [frame["type"] for frame in relayed] == ["chat.typing"]
    assert await customer_socket.receive_nothing(timeout=0.1)  # dropped without a word

    # The page keeps sending while its user types (well within the socket's rate limit): the next is relayed.
    async with asyncio.timeout(10):
        while await staff_socket.receive_nothing(timeout=0.25):
            await customer_socket.send_json_to(typing(order.pk))
        second = await staff_socket.receive_json_from()
    assert second["type"] == "chat.typing"
    assert loop.time() - first_relayed_at >= TYPING_RELAY_INTERVAL
    await disconnect(customer_socket, staff_socket)


async def test_typing_is_throttled_per_conversation():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    second_order = await place(customer=customer)
    assert (await customer_socket.receive_json_from(timeout=5))["type"] == "order_placed"  # My orders lists it
    await opened(customer_socket, second_order)
    await opened(staff_socket, second_order)

    await customer_socket.send_json_to(typing(order.pk))
    await customer_socket.send_json_to(typing(second_order.pk))

    relayed = await frames_until_quiet(staff_socket)
    assert sorted(frame["order"] for frame in relayed if frame["type"] == "chat.typing") == sorted(
        [order.pk, second_order.pk]
    )
    await disconnect(customer_socket, staff_socket)


async def test_typing_in_a_conversation_the_socket_does_not_watch_is_refused_and_relayed_to_nobody():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    elsewhere, _ = await open_socket(customer)

    await elsewhere.send_json_to(typing(order.pk))

    error = await elsewhere.receive_json_from(timeout=5)
    assert (error["type"], error["code"], error["order"]) == ("error", "not_watching", order.pk)
    assert await staff_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket, elsewhere)


async def test_typing_after_closing_the_conversation_is_refused():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    await customer_socket.send_json_to({"type": "chat.close", "order": order.pk})

    await customer_socket.send_json_to(typing(order.pk))

    assert (await customer_socket.receive_json_from(timeout=5))["code"] == "not_watching"
    assert await staff_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket)


async def test_typing_on_another_customers_order_is_refused_and_relayed_to_nobody():
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    intruder = await make_user()
    intruder_socket, _ = await open_socket(intruder)
    await intruder_socket.send_json_to({"type": "chat.open", "order": order.pk})
    assert (await intruder_socket.receive_json_from(timeout=5))["code"] == "unknown_order"

    await intruder_socket.send_json_to(typing(order.pk))

    error = await intruder_socket.receive_json_from(timeout=5)
    assert (error["code"], error["order"]) == ("not_watching", order.pk)
    assert await staff_socket.receive_nothing(timeout=0.3)
    assert await customer_socket.receive_nothing(timeout=0.1)
    await disconnect(customer_socket, staff_socket, intruder_socket)


@pytest.mark.parametrize("order_field", [None, "1", 0, -1, True, 1.5, 2**63, [1], {"id": 1}])
async def test_typing_with_a_bad_order_field_is_refused_and_relayed_to_nobody(order_field):
    customer, order, staff, customer_socket, [staff_socket] = await order_with_sockets()
    frame = {"type": "chat.typing"} if order_field is None else {"type": "chat.typing", "order": order_field}

    await customer_socket.send_json_to(frame)

    error = await customer_socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "invalid_field")
    assert await staff_socket.receive_nothing(timeout=0.3)
    await disconnect(customer_socket, staff_socket)
