"""Issue 18, point 3: presence across web processes clears within its expiry when one is SIGKILLed.

The customer's socket is on one daphne, the staff member's on another, sharing Redis. The kill runs no disconnect,
no close hook and no Redis command: only the dead process's presence key, no longer refreshed, expires, and the
survivor's next re-read of what its sockets watch sees the change (support/presence.py).
"""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from tests.conftest import requires_postgres, requires_redis
from tests.factories import StaffFactory, UserFactory, place_order
from tests.faults.client import in_thread, sessions_for
from tests.faults.conftest import record
from tests.live.clients import receive_frame, receive_hello
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis(), pytest.mark.timeout(120)]

PRESENCE_SECONDS = 3.0
# The survivor re-reads every PRESENCE_SECONDS / 3; a loaded machine gets a few seconds more.
NOTICED_WITHIN = PRESENCE_SECONDS + PRESENCE_SECONDS / 3 + 5


async def signed_in_socket(server, session_id: str):
    socket = await connect(
        server.ws_url,
        origin=server.origin,
        additional_headers={"Cookie": f"sessionid={session_id}"},
        ping_interval=None,
        close_timeout=1,
    )
    await receive_hello(socket)
    return socket


async def chat_opened(socket, order) -> dict:
    await socket.send(json.dumps({"type": "chat.open", "order": order.pk}))
    frame = await receive_frame(socket)
    assert frame["type"] == "chat.opened", frame
    return frame


async def next_presence(socket, timeout: float) -> dict:
    """The next `chat.presence`, skipping anything else; fails after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive_frame(socket, timeout=timeout)
            if frame["type"] == "chat.presence":
                return frame


def customer_staff_and_order():
    customer, staff = UserFactory(), StaffFactory()
    return customer, staff, place_order(customer=customer), sessions_for([customer, staff])


def kill(server) -> None:
    server.process.process.kill()
    server.process.process.wait(10)


@pytest.fixture
def two_web_processes(cluster):
    presence = {"CHAT_PRESENCE_SECONDS": str(PRESENCE_SECONDS)}
    return cluster.web("daphne-a", extra_env=presence), cluster.web("daphne-b", extra_env=presence)


async def test_staff_see_the_customer_go_offline_within_the_expiry_when_the_customers_process_is_killed(
    two_web_processes,
):
    customers_process, staffs_process = two_web_processes
    customer, staff, order, sessions = await in_thread(customer_staff_and_order)
    customer_socket = await signed_in_socket(customers_process, sessions[customer.pk])  # any page of the shop
    staff_socket = await signed_in_socket(staffs_process, sessions[staff.pk])
    opened = await chat_opened(staff_socket, order)
    assert opened["presence"] == {"customer_online": True, "staff_viewing": True}

    await asyncio.to_thread(kill, customers_process)
    killed_at = time.monotonic()
    frame = await next_presence(staff_socket, timeout=NOTICED_WITHIN)
    noticed_after = time.monotonic() - killed_at

    record(
        "chat_presence_customer_process_killed",
        presence_seconds=PRESENCE_SECONDS,
        killed_process_exit_code=customers_process.process.process.returncode,
        seconds_from_kill_to_customer_offline=round(noticed_after, 2),
    )
    assert customers_process.process.process.returncode == -9  # no disconnect, no close hook ever ran
    assert frame == {"type": "chat.presence", "order": order.pk, "customer_online": False, "staff_viewing": True}
    # Only the expiry can have told: the dead process beat at most a third of it before the kill.
    assert noticed_after >= PRESENCE_SECONDS * 2 / 3 - 0.5
    await customer_socket.close()
    await staff_socket.close()


async def test_the_customer_sees_staff_stop_viewing_within_the_expiry_when_the_staff_process_is_killed(
    two_web_processes,
):
    customers_process, staffs_process = two_web_processes
    customer, staff, order, sessions = await in_thread(customer_staff_and_order)
    customer_socket = await signed_in_socket(customers_process, sessions[customer.pk])
    opened = await chat_opened(customer_socket, order)
    assert opened["presence"] == {"customer_online": True, "staff_viewing": False}
    staff_socket = await signed_in_socket(staffs_process, sessions[staff.pk])
    await chat_opened(staff_socket, order)
    assert (await next_presence(customer_socket, timeout=10))["staff_viewing"] is True

    await asyncio.to_thread(kill, staffs_process)
    killed_at = time.monotonic()
    frame = await next_presence(customer_socket, timeout=NOTICED_WITHIN)
    noticed_after = time.monotonic() - killed_at

    record(
        "chat_presence_staff_process_killed",
        presence_seconds=PRESENCE_SECONDS,
        seconds_from_kill_to_staff_not_viewing=round(noticed_after, 2),
    )
    assert staffs_process.process.process.returncode == -9
    assert frame == {"type": "chat.presence", "order": order.pk, "customer_online": True, "staff_viewing": False}
    assert noticed_after >= PRESENCE_SECONDS * 2 / 3 - 0.5
    await customer_socket.close()
    await staff_socket.close()
