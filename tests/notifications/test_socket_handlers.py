"""Socket message types owned by other apps: registered once, reached through the generic consumer."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from notifications.groups import user_group
from notifications.socket_handlers import (
    client_message_handler,
    client_message_register,
    layer_message_handler,
    layer_message_register,
    socket_close_hooks,
    socket_close_register,
    socket_open_hooks,
    socket_open_register,
)
from support.presence import presence_socket_closed, presence_socket_opened
from support.socket import chat_message_delivered, chat_send
from tests.notifications.test_consumer import closed_with, make_user, open_socket
from tests.notifications.test_consumer import socket as anonymous_socket


async def echo(socket, content):
    """A test app's client message: answered on the socket, with what the socket keeps for the app."""
    count = socket.extensions.setdefault("tests", 0) + 1
    socket.extensions["tests"] = count
    await socket.send_json({"type": "tests.echoed", "said": content.get("say"), "count": count})


async def shout(socket, message):
    """A test app's channel-layer message: forwarded to the client."""
    await socket.send_json({"type": "tests.shouted", "text": message["text"]})


client_message_register("tests.echo", echo)  # as the test app's AppConfig.ready() would
layer_message_register("tests.shout", shout)


def test_the_support_app_registers_its_chat_messages_at_start_up():
    assert client_message_handler("chat.send") is chat_send
    assert layer_message_handler("chat.message") is chat_message_delivered


def test_registering_a_type_again_is_harmless_and_another_handler_under_its_name_is_refused():
    client_message_register("tests.echo", echo)
    layer_message_register("tests.shout", shout)

    with pytest.raises(ValueError, match="already handled"):
        client_message_register("tests.echo", shout)
    with pytest.raises(ValueError, match="already handled"):
        layer_message_register("tests.shout", echo)


@pytest.mark.parametrize("name", ["ping", "ack", "notification", "Chat.send", "chat.", ".send", "chat send", ""])
def test_a_type_that_is_not_namespaced_by_its_app_is_refused(name):
    """So no app can take over, or pass for, one of the protocol's own types."""
    with pytest.raises(ValueError, match="'<app>.<name>'"):
        client_message_register(name, echo)
    with pytest.raises(ValueError, match="'<app>.<name>'"):
        layer_message_register(name, shout)


@pytest.mark.django_db(transaction=True)
async def test_a_registered_client_message_reaches_its_handler_with_state_kept_per_socket():
    customer = await make_user()
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)

    for say in ("a", "b"):
        await first.send_json_to({"type": "tests.echo", "say": say})
    await second.send_json_to({"type": "tests.echo", "say": "c"})

    assert await first.receive_json_from() == {"type": "tests.echoed", "said": "a", "count": 1}
    assert await first.receive_json_from() == {"type": "tests.echoed", "said": "b", "count": 2}
    assert await second.receive_json_from() == {"type": "tests.echoed", "said": "c", "count": 1}
    for socket in (first, second):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_registered_channel_layer_message_reaches_its_handler():
    customer = await make_user()
    socket, _ = await open_socket(customer)

    await get_channel_layer().group_send(user_group(customer.pk), {"type": "tests.shout", "text": "hey"})

    assert await socket.receive_json_from(timeout=5) == {"type": "tests.shouted", "text": "hey"}
    await socket.disconnect()


# What the test app's open and close hooks saw: (event, user id), in order.
hooked: list[tuple[str, int]] = []


async def on_open(socket):
    hooked.append(("opened", socket.user_id))


async def on_close(socket):
    hooked.append(("closed", socket.user_id))


socket_open_register(on_open)
socket_close_register(on_close)


def test_the_support_app_hears_of_every_socket_opening_and_closing():
    assert presence_socket_opened in socket_open_hooks()
    assert presence_socket_closed in socket_close_hooks()


@pytest.mark.django_db(transaction=True)
async def test_an_apps_hooks_hear_of_a_socket_opening_and_once_of_its_closing():
    customer = await make_user()

    socket, _ = await open_socket(customer)
    assert [event for event in hooked if event[1] == customer.pk] == [("opened", customer.pk)]
    await socket.disconnect()  # the consumer leaves twice (disconnect, then as its application ends)

    assert [event for event in hooked if event[1] == customer.pk] == [("opened", customer.pk), ("closed", customer.pk)]


@pytest.mark.django_db(transaction=True)
async def test_a_socket_refused_at_connect_is_announced_to_no_hook():
    refused = anonymous_socket(None)  # anonymous: accepted, then closed with 4401
    before = len(hooked)

    await refused.connect()
    assert (await refused.receive_output(timeout=2))["type"] == "websocket.close"
    await refused.wait()

    assert len(hooked) == before


# --- Work an app runs beside the socket's handlers -------------------------------------------------------


async def wait_then_answer(socket, content):
    """A test app's client message whose work must not hold up the socket: it waits for a layer message."""
    released = socket.extensions.setdefault("tests.beside", asyncio.Event())

    async def answer():
        await released.wait()
        if content.get("fail"):
            raise RuntimeError("a bug in the app's task")
        await socket.send_json({"type": "tests.answered"})

    socket.task_beside(answer())


async def release(socket, message):
    socket.extensions["tests.beside"].set()


client_message_register("tests.wait", wait_then_answer)
layer_message_register("tests.release", release)


@pytest.mark.django_db(transaction=True)
async def test_an_apps_task_beside_the_socket_holds_up_none_of_its_messages():
    customer = await make_user()
    socket, _ = await open_socket(customer)

    await socket.send_json_to({"type": "tests.wait"})
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}  # while the task still waits
    await get_channel_layer().group_send(user_group(customer.pk), {"type": "tests.release"})

    assert await socket.receive_json_from(timeout=5) == {"type": "tests.answered"}
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_bug_in_an_apps_task_closes_the_socket_with_4011_as_a_bug_in_a_handler_does():
    customer = await make_user()
    socket, _ = await open_socket(customer)

    await socket.send_json_to({"type": "tests.wait", "fail": True})
    await get_channel_layer().group_send(user_group(customer.pk), {"type": "tests.release"})

    assert await closed_with(socket, timeout=5) == 4011
