"""Delivery receipts over a real socket: `ack` marks what this socket delivered, once, and refuses the rest.

The consumer runs on the test's event loop, so the test can wait for the acks it gathered to be written.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from notifications.models import Notification
from notifications.receipts import receipts_written
from orders.models import OrderStatus
from tests.notifications.test_consumer import make_user, open_socket, place

pytestmark = [pytest.mark.django_db(transaction=True)]


@sync_to_async
def delivered_at(user) -> dict:
    return dict(Notification.objects.filter(recipient=user).values_list("seq", "delivered_at"))


@sync_to_async
def forget_deliveries(user) -> None:
    Notification.objects.filter(recipient=user).update(delivered_at=None)


async def handled(communicator) -> None:
    """Wait until the consumer has handled everything sent before (it answers a ping in order), and written it."""
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await receipts_written()


async def test_an_ack_marks_every_seq_up_to_it_delivered_and_a_later_one_keeps_the_first_times():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)  # seqs 1, 2, 3
    communicator, hello = await open_socket(customer)
    assert hello["last_seq"] == 3

    await communicator.send_json_to({"type": "ack", "seq": 2})
    await handled(communicator)
    first = await delivered_at(customer)
    assert first[1] is not None and first[2] is not None and first[3] is None

    await communicator.send_json_to({"type": "ack", "seq": 3})
    await handled(communicator)
    second = await delivered_at(customer)
    assert (second[1], second[2]) == (first[1], first[2])
    assert second[3] is not None

    other_tab, _ = await open_socket(customer)  # another page of the customer's shows them too
    await other_tab.send_json_to({"type": "ack", "seq": 3})
    await handled(other_tab)
    assert await delivered_at(customer) == second
    await communicator.disconnect()
    await other_tab.disconnect()


async def test_a_replayed_backlog_can_be_acknowledged():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)
    communicator, _ = await open_socket(customer, query="?after=1")
    assert [(await communicator.receive_json_from())["seq"] for _ in range(2)] == [2, 3]

    await communicator.send_json_to({"type": "ack", "seq": 3})
    await handled(communicator)
    assert None not in (await delivered_at(customer)).values()
    await communicator.disconnect()


async def test_an_ack_beyond_what_this_socket_sent_is_refused_and_writes_nothing():
    alice, bob = await make_user(), await make_user()
    await place(customer=alice, status=OrderStatus.DELIVERED)  # alice has seqs 1-4
    await place(customer=bob, status=OrderStatus.PAID)  # bob has seq 1
    communicator, _ = await open_socket(bob)

    for seq in (2, 4, 2**63 - 1):  # seqs bob does not have: alice's, or far in the future
        await communicator.send_json_to({"type": "ack", "seq": seq})
        frame = await communicator.receive_json_from(timeout=5)
        assert (frame["type"], frame["code"]) == ("error", "invalid_ack")
        assert "1" in frame["detail"]
    await handled(communicator)
    assert set((await delivered_at(bob)).values()) == {None}
    assert set((await delivered_at(alice)).values()) == {None}

    await communicator.send_json_to({"type": "ack", "seq": 1})  # the socket stays usable
    await handled(communicator)
    assert None not in (await delivered_at(bob)).values()
    await communicator.disconnect()


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "ack"}',
        '{"type": "ack", "seq": null}',
        '{"type": "ack", "seq": "3"}',
        '{"type": "ack", "seq": -1}',
        '{"type": "ack", "seq": 0}',
        '{"type": "ack", "seq": 1.5}',
        '{"type": "ack", "seq": 2.0}',
        '{"type": "ack", "seq": true}',
        '{"type": "ack", "seq": [3]}',
        '{"type": "ack", "seq": 9223372036854775808}',
        '{"type": "ack", "seq": 1e400}',
    ],
)
async def test_an_ack_without_an_integer_seq_is_refused_and_writes_nothing(message):
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)
    communicator, _ = await open_socket(customer)
    await communicator.send_to(text_data=message)
    frame = await communicator.receive_json_from(timeout=5)
    assert (frame["type"], frame["code"]) == ("error", "invalid_field")
    await handled(communicator)
    assert set((await delivered_at(customer)).values()) == {None}
    await communicator.disconnect()


async def test_an_ack_at_or_below_what_this_socket_acknowledged_writes_nothing():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)
    communicator, _ = await open_socket(customer)
    await communicator.send_json_to({"type": "ack", "seq": 3})
    await handled(communicator)
    assert None not in (await delivered_at(customer)).values()

    await forget_deliveries(customer)  # any write now would show
    for seq in (3, 2, 1):
        await communicator.send_json_to({"type": "ack", "seq": seq})
    await handled(communicator)
    assert set((await delivered_at(customer)).values()) == {None}
    await communicator.disconnect()


async def test_acks_count_against_the_sockets_rate_limit_like_any_message():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)
    communicator, _ = await open_socket(customer)
    for _ in range(60):
        await communicator.send_json_to({"type": "ack", "seq": 3})
    frames, close_code = [], None
    async with asyncio.timeout(10):
        while close_code is None:
            output = await communicator.receive_output()
            if output["type"] == "websocket.close":
                close_code = output["code"]
            else:
                frames.append(output["text"])
    assert close_code == 4429
    assert sum('"rate_limited"' in frame for frame in frames) == 1
    await receipts_written()
    assert None not in (await delivered_at(customer)).values()  # the acks within the limit were taken


async def test_acks_are_not_charged_to_the_user_wide_limit_which_still_counts_every_other_message(settings):
    settings.NOTIFICATION_USER_RATE_LIMIT = "3/minute"
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)
    communicator, _ = await open_socket(customer)

    for seq in [1, 2, 3, 3, 3]:  # five acks: more than the user may send of anything else
        await communicator.send_json_to({"type": "ack", "seq": seq})
    replies = []
    for _ in range(4):
        await communicator.send_json_to({"type": "ping"})
        replies.append((await communicator.receive_json_from(timeout=5))["type"])

    assert replies == ["pong", "pong", "pong", "error"]  # the pings alone used the user's three
    await receipts_written()
    assert None not in (await delivered_at(customer)).values()
    await communicator.disconnect()
