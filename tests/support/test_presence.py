"""Presence in a conversation: customer online, staff viewing; in `chat.opened`, live, expiring with a process."""

import asyncio
import time
import uuid

import pytest

from notifications.user_limits import socket_registry
from support import presence
from tests.notifications.test_consumer import make_user, open_socket, place
from tests.support.test_consumer import disconnect, make_staff, opened

pytestmark = [pytest.mark.django_db(transaction=True)]

BOTH = {"customer_online": True, "staff_viewing": True}


async def presence_frame(socket, *, timeout=5) -> dict:
    frame = await socket.receive_json_from(timeout=timeout)
    assert frame["type"] == "chat.presence", frame
    return {key: frame[key] for key in ("order", "customer_online", "staff_viewing")}


async def customer_and_order():
    customer = await make_user()
    return customer, await place(customer=customer)


async def test_the_customer_opening_alone_sees_themself_online_and_no_staff():
    customer, order = await customer_and_order()
    socket, _ = await open_socket(customer)

    header, _ = await opened(socket, order)

    assert header["presence"] == {"customer_online": True, "staff_viewing": False}
    await socket.disconnect()


async def test_staff_opening_while_the_customer_is_away_see_them_offline_and_themselves_viewing():
    customer, order = await customer_and_order()
    staff_socket, _ = await open_socket(await make_staff())

    header, _ = await opened(staff_socket, order)

    assert header["presence"] == {"customer_online": False, "staff_viewing": True}
    await staff_socket.disconnect()


async def test_staff_watching_see_the_customer_come_online_on_any_page_and_go_offline_with_their_last_socket():
    customer, order = await customer_and_order()
    staff_socket, _ = await open_socket(await make_staff())
    await opened(staff_socket, order)

    first_tab, _ = await open_socket(customer)  # not on the order's page: online all the same
    assert await presence_frame(staff_socket) == {"order": order.pk, **BOTH}
    second_tab, _ = await open_socket(customer)
    await first_tab.disconnect()
    assert await staff_socket.receive_nothing(timeout=0.5)  # still online in the other tab
    await second_tab.disconnect()

    assert await presence_frame(staff_socket) == {"order": order.pk, "customer_online": False, "staff_viewing": True}
    await staff_socket.disconnect()


async def test_the_customer_watching_sees_staff_begin_and_stop_viewing_by_chat_close():
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    await opened(customer_socket, order)
    staff_socket, _ = await open_socket(await make_staff())

    await opened(staff_socket, order)
    assert await presence_frame(customer_socket) == {"order": order.pk, **BOTH}
    await staff_socket.send_json_to({"type": "chat.close", "order": order.pk})

    assert await presence_frame(customer_socket) == {"order": order.pk, "customer_online": True, "staff_viewing": False}
    await disconnect(customer_socket, staff_socket)


async def test_the_customer_watching_sees_staff_stop_viewing_when_their_socket_ends():
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    await opened(customer_socket, order)
    staff_socket, _ = await open_socket(await make_staff())
    await opened(staff_socket, order)
    assert (await presence_frame(customer_socket))["staff_viewing"] is True

    await staff_socket.disconnect()

    assert (await presence_frame(customer_socket))["staff_viewing"] is False
    await customer_socket.disconnect()


async def test_staff_viewing_holds_while_any_staff_socket_still_watches():
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    await opened(customer_socket, order)
    staff = await make_staff()
    first, _ = await open_socket(staff)
    second, _ = await open_socket(await make_staff())
    await opened(first, order)
    assert (await presence_frame(customer_socket))["staff_viewing"] is True
    await opened(second, order)

    await first.disconnect()

    assert await customer_socket.receive_nothing(timeout=0.5)
    await second.disconnect()
    assert (await presence_frame(customer_socket))["staff_viewing"] is False
    await customer_socket.disconnect()


async def test_presence_reaches_only_sockets_watching_that_conversation():
    customer, order = await customer_and_order()
    intruder = await make_user()
    intruder_socket, _ = await open_socket(intruder)
    await intruder_socket.send_json_to({"type": "chat.open", "order": order.pk})
    assert (await intruder_socket.receive_json_from(timeout=5))["code"] == "unknown_order"
    elsewhere, _ = await open_socket(customer)  # the customer's page without the conversation
    staff_socket, _ = await open_socket(await make_staff())

    await opened(staff_socket, order)
    await staff_socket.disconnect()

    assert await intruder_socket.receive_nothing(timeout=0.5)
    assert await elsewhere.receive_nothing(timeout=0.1)
    await disconnect(intruder_socket, elsewhere)


async def test_a_closing_socket_removes_its_entries_and_the_last_one_stops_its_process_beat():
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    staff_socket, _ = await open_socket(await make_staff())
    await opened(staff_socket, order)
    registry = socket_registry()
    beat = presence._process().beat
    assert beat is not None and not beat.done()
    assert await registry.client.zcard(presence.staff_viewing_key(registry, order.pk)) == 1

    await disconnect(customer_socket, staff_socket)

    assert await registry.client.zcard(presence.staff_viewing_key(registry, order.pk)) == 0
    assert await registry.client.zcard(registry.sockets_key(customer.pk)) == 0
    async with asyncio.timeout(5):
        while not beat.done():
            await asyncio.sleep(0.01)  # the cancellation runs at the loop's next turn
    assert beat.cancelled() and presence._process().beat is None


# --- A process that dies without a word (SIGKILL): its entries expire -------------------------------------


async def dead_process_entries(registry, *, expires_in: float) -> str:
    """A process of the shop's that beat once, `expires_in` seconds before it goes, and then died with its sockets."""
    process = uuid.uuid4().hex
    await registry.client.set(presence.process_key(registry, process), 1, px=int(expires_in * 1000))
    return process


async def test_a_customer_online_only_through_a_dead_process_goes_offline_within_the_expiry(settings):
    settings.CHAT_PRESENCE_SECONDS = 1.5
    customer, order = await customer_and_order()
    staff_socket, _ = await open_socket(await make_staff())
    registry = socket_registry()
    process = await dead_process_entries(registry, expires_in=settings.CHAT_PRESENCE_SECONDS)
    await registry.client.zadd(registry.sockets_key(customer.pk), {f"{process} specific.dead!1": time.time() * 1000})
    started = time.monotonic()

    header, _ = await opened(staff_socket, order)
    assert header["presence"]["customer_online"] is True

    frame = await presence_frame(staff_socket, timeout=settings.CHAT_PRESENCE_SECONDS * 2 + 2)
    assert frame == {"order": order.pk, "customer_online": False, "staff_viewing": True}
    # Nobody said so: the process key's expiry did, seen at this process's next beat.
    assert time.monotonic() - started >= settings.CHAT_PRESENCE_SECONDS * 0.9
    await staff_socket.disconnect()


async def test_staff_viewing_only_through_a_dead_process_stops_within_the_expiry(settings):
    settings.CHAT_PRESENCE_SECONDS = 1.5
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    registry = socket_registry()
    process = await dead_process_entries(registry, expires_in=settings.CHAT_PRESENCE_SECONDS)
    entry = {f"{process} specific.dead!1": time.time() * 1000}
    await registry.client.zadd(presence.staff_viewing_key(registry, order.pk), entry)

    header, _ = await opened(customer_socket, order)
    assert header["presence"] == BOTH

    frame = await presence_frame(customer_socket, timeout=settings.CHAT_PRESENCE_SECONDS * 2 + 2)
    assert frame == {"order": order.pk, "customer_online": True, "staff_viewing": False}
    await customer_socket.disconnect()


async def test_a_live_process_keeps_its_entries_counting_past_the_expiry_by_beating(settings):
    settings.CHAT_PRESENCE_SECONDS = 1.0
    customer, order = await customer_and_order()
    customer_socket, _ = await open_socket(customer)
    staff_socket, _ = await open_socket(await make_staff())
    header, _ = await opened(staff_socket, order)
    assert header["presence"] == BOTH

    assert await staff_socket.receive_nothing(timeout=settings.CHAT_PRESENCE_SECONDS * 3)

    # What another process reads: this one's key, refreshed all along, still there.
    registry = socket_registry()
    assert await registry.client.pttl(presence.process_key(registry, registry.process)) > 0
    await disconnect(customer_socket, staff_socket)
