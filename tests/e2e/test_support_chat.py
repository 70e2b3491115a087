"""Support conversations end to end: the customer on one daphne, staff on another, sharing Redis; and embedded mode."""

import json
import uuid

import pytest

from tests.conftest import requires_postgres, requires_redis
from tests.factories import place_order
from tests.live.clients import assert_no_frame, receive_frame, receive_hello
from tests.live.servers import live_db, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]


@pytest.fixture(scope="module")
def staff_web_process(_full_stack, e2e_workdir, e2e_static_root):
    """A second daphne on the stack's Redis and database: where the staff member's socket is."""
    server = start_web_server("daphne-chat-staff", _full_stack.env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def order(customer):
    return place_order(customer=customer)


async def signed_in_socket(server, user, open_browser, open_socket):
    browser = await (await open_browser(server)).login(user.username)
    socket = await open_socket(server, browser)
    await receive_hello(socket)
    return socket


async def chat_open(socket, order) -> dict:
    await socket.send(json.dumps({"type": "chat.open", "order": order.pk, "after": 0}))
    frame = await receive_frame(socket)
    assert frame["type"] == "chat.opened", frame
    return frame


async def chat_send(socket, order, body: str, **fields) -> dict:
    """Send a message; the `chat.sent` that answers it."""
    await socket.send(
        json.dumps({"type": "chat.send", "order": order.pk, "body": body, "client_id": str(uuid.uuid4()), **fields})
    )
    frame = await receive_frame(socket)
    assert frame["type"] == "chat.sent", frame
    return frame


async def converse(customer_socket, staff_socket, order) -> None:
    """Both open the conversation, then: a question, an internal note, a reply, a read receipt."""
    await chat_open(customer_socket, order)
    assert (await chat_open(staff_socket, order))["presence"] == {"customer_online": True, "staff_viewing": True}
    presence = await receive_frame(customer_socket)  # from the other process: staff are looking now
    assert presence == {"type": "chat.presence", "order": order.pk, "customer_online": True, "staff_viewing": True}

    question = await chat_send(customer_socket, order, "The parcel says delivered but it isn't here")
    assert await receive_frame(staff_socket) == {
        "type": "chat.message",
        "order": order.pk,
        "previous_seq": 0,
        "message": question["message"],
    }

    await chat_send(staff_socket, order, "Courier left it at the porch?", internal=True)
    await assert_no_frame(customer_socket)

    reply = await chat_send(staff_socket, order, "We're asking the courier now.")
    received = await receive_frame(customer_socket)
    assert (received["type"], received["previous_seq"], received["message"]) == ("chat.message", 1, reply["message"])

    await customer_socket.send(json.dumps({"type": "chat.read", "order": order.pk, "seq": 3}))
    receipt = await receive_frame(staff_socket)
    assert (receipt["type"], receipt["seq"], receipt["reader"]["is_staff"]) == ("chat.read", 3, False)


@requires_redis()
async def test_a_customer_and_staff_on_two_web_processes_hold_a_conversation(
    stack, staff_web_process, open_browser, open_socket, customer, staff, order
):
    customer_socket = await signed_in_socket(stack.web, customer, open_browser, open_socket)
    staff_socket = await signed_in_socket(staff_web_process, staff, open_browser, open_socket)

    await converse(customer_socket, staff_socket, order)


async def test_in_embedded_mode_a_conversation_runs_on_the_one_process(
    embedded_server, open_browser, open_socket, customer, staff, order
):
    customer_socket = await signed_in_socket(embedded_server, customer, open_browser, open_socket)
    staff_socket = await signed_in_socket(embedded_server, staff, open_browser, open_socket)

    await converse(customer_socket, staff_socket, order)
