"""A socket logs one line when it is accepted and one when it ends, with its close code, user and request id."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from shop.asgi import application
from tests.log_capture import json_log_captured
from tests.notifications.test_consumer import closed_with, session_key_for

pytestmark = [pytest.mark.django_db(transaction=True)]


def socket(session_key: str | None, *extra_headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver"), *extra_headers]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}; csrftoken=csrf-cookie-value".encode()))
    return WebsocketCommunicator(application, "/ws/notifications/", headers=headers)


async def test_a_customers_socket_logs_its_connect_and_the_clients_close_code_with_their_user(customer):
    session_key = await sync_to_async(session_key_for)(customer)
    with json_log_captured() as log:
        communicator = socket(session_key, (b"x-request-id", b"lb-socket-1"))
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from())["type"] == "hello"
        await communicator.disconnect(code=1001)
    [connected] = log.events("socket_connected")
    [closed] = log.events("socket_closed")
    assert (connected["user_id"], connected["request_id"], connected["path"]) == (
        customer.pk,
        "lb-socket-1",
        "/ws/notifications/",
    )
    assert (closed["user_id"], closed["request_id"], closed["code"], closed["closed_by"]) == (
        customer.pk, "lb-socket-1", 1001, "client",
    )  # fmt: skip
    assert session_key not in log.text() and "csrf-cookie-value" not in log.text()


async def test_a_socket_the_server_closes_logs_the_code_the_server_sent():
    with json_log_captured() as log:
        communicator = socket(None)
        assert (await communicator.connect())[0]
        assert await closed_with(communicator) == 4401
        await communicator.disconnect(code=4401)  # the client's answer, as a browser's
    [connected] = log.events("socket_connected")
    [closed] = log.events("socket_closed")
    assert connected["user_id"] is None and len(connected["request_id"]) == 32
    assert (closed["code"], closed["closed_by"], closed["request_id"]) == (4401, "server", connected["request_id"])


async def test_two_sockets_get_two_request_ids(customer):
    session_key = await sync_to_async(session_key_for)(customer)
    with json_log_captured() as log:
        for _ in range(2):
            communicator = socket(session_key)
            assert (await communicator.connect())[0]
            await communicator.receive_json_from()
            await communicator.disconnect()
    assert len({line["request_id"] for line in log.events("socket_closed")}) == 2
