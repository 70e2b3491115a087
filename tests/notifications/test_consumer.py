"""The NotificationConsumer over a real channel layer: auth, isolation, ordered replay, bad input."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from notifications import consumers
from notifications.groups import user_group
from notifications.models import Notification
from notifications.services import notifications_publish
from orders.models import OrderStatus
from orders.transitions import order_transition
from shop.asgi import application
from tests.factories import StaffFactory, UserFactory, place_order

pytestmark = [pytest.mark.django_db(transaction=True)]

ORIGIN = "http://testserver"


def session_key_for(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def socket(session_key: str | None = None, *, query: str = "", origin: str | None = ORIGIN) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return WebsocketCommunicator(application, f"/ws/notifications/{query}", headers=headers)


async def open_socket(user, *, query: str = "") -> tuple[WebsocketCommunicator, dict]:
    """Connect as `user` and return the socket and its hello frame."""
    communicator = socket(await sync_to_async(session_key_for)(user), query=query)
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello"
    return communicator, hello


async def frames_until_quiet(communicator, *, quiet: float = 0.3, deadline: float = 10) -> list[dict]:
    """Every frame that arrives until none has come for `quiet` seconds."""
    frames = []
    async with asyncio.timeout(deadline):
        while not await communicator.receive_nothing(timeout=quiet):
            frames.append(await communicator.receive_json_from())
    return frames


async def closed_with(communicator, *, timeout: float = 2) -> int:
    output = await communicator.receive_output(timeout=timeout)
    assert output["type"] == "websocket.close", output
    return output["code"]


place = sync_to_async(place_order)
transition = sync_to_async(order_transition)
make_user = sync_to_async(UserFactory)


# --- Authentication and origin ---------------------------------------------------------


async def test_anonymous_socket_is_accepted_then_closed_with_4401():
    communicator = socket(None)
    connected, _ = await communicator.connect()
    assert connected
    assert await closed_with(communicator) == 4401


async def test_invalid_session_cookie_counts_as_anonymous():
    communicator = socket("not-a-real-session")
    await communicator.connect()
    assert await closed_with(communicator) == 4401


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(origin):
    customer = await make_user()
    communicator = socket(await sync_to_async(session_key_for)(customer), origin=origin)
    connected, _ = await communicator.connect()
    assert not connected


async def test_hello_says_who_and_where_the_sequence_is():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.PROCESSING)  # seq 1 and 2
    communicator, hello = await open_socket(customer)
    assert hello.pop("ticket")  # for the next connect (tests/notifications/test_consumer_tickets.py)
    assert hello == {"type": "hello", "user_id": customer.pk, "last_seq": 2, "unread": 2, "unread_version": 2}
    await communicator.disconnect()


# --- Live delivery and isolation -----------------------------------------------------------


async def test_live_change_reaches_the_customer_and_nobody_else():
    alice, bob = await make_user(), await make_user()
    bobs_order = await place(customer=bob)
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)

    await transition(order_id=bobs_order.pk, to_status=OrderStatus.PAID)

    frame = await bob_socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["seq"], frame["order"]["number"]) == ("notification", 1, bobs_order.number)
    assert frame["created_at"].endswith("+00:00") and "." in frame["created_at"]
    assert await alice_socket.receive_nothing(timeout=0.5)
    await alice_socket.disconnect()
    await bob_socket.disconnect()


async def test_staff_hear_every_orders_change_and_customers_do_not():
    staff, customer, bystander = await sync_to_async(StaffFactory)(), await make_user(), await make_user()
    order = await place(customer=customer)
    staff_socket, _ = await open_socket(staff)
    bystander_socket, _ = await open_socket(bystander)

    await transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)

    frame = await staff_socket.receive_json_from(timeout=5)
    assert frame["type"] == "order_changed"
    assert (frame["order"]["number"], frame["order"]["status"], frame["actor"]) == (
        order.number,
        "paid",
        staff.get_username(),
    )
    assert await bystander_socket.receive_nothing(timeout=0.5)
    await staff_socket.disconnect()
    await bystander_socket.disconnect()


# --- Resume with ?after= ---------------------------------------------------------------------


async def test_after_replays_missed_notifications_in_order_then_goes_live():
    customer = await make_user()
    order = await place(customer=customer, status=OrderStatus.SHIPPED)  # seq 1..3

    communicator, hello = await open_socket(customer, query="?after=1")
    assert hello["last_seq"] == 3
    replayed = [await communicator.receive_json_from() for _ in range(2)]
    assert [frame["seq"] for frame in replayed] == [2, 3]
    assert [frame["order"]["status"] for frame in replayed] == ["processing", "shipped"]

    await transition(order_id=order.pk, to_status=OrderStatus.DELIVERED)
    assert (await communicator.receive_json_from(timeout=5))["seq"] == 4
    await communicator.disconnect()


async def test_live_events_racing_the_backlog_arrive_once_in_order_without_gaps():
    customer = await make_user()
    orders = [await place(customer=customer) for _ in range(6)]
    ids_before = []

    # Three committed but never published (a crashed publisher), then connect from 0
    # while the same three are published live and three more changes happen.
    for order in orders[:3]:
        await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    await sync_to_async(Notification.objects.update)(published_at=None)
    ids_before = await sync_to_async(list)(Notification.objects.values_list("pk", flat=True))

    communicator = socket(await sync_to_async(session_key_for)(customer), query="?after=0")
    await communicator.connect()
    racing = asyncio.gather(
        sync_to_async(notifications_publish)(notification_ids=ids_before),
        *(transition(order_id=order.pk, to_status=OrderStatus.PAID) for order in orders[3:]),
    )
    frames = await frames_until_quiet(communicator)
    await racing
    frames += await frames_until_quiet(communicator)

    assert frames[0]["type"] == "hello"
    assert [frame["seq"] for frame in frames[1:]] == [1, 2, 3, 4, 5, 6]
    await communicator.disconnect()


async def test_a_gap_in_live_delivery_is_filled_from_the_database():
    customer = await make_user()
    first, second = await place(customer=customer), await place(customer=customer)
    communicator, _ = await open_socket(customer)

    # seq 1 commits but its publish is lost; seq 2 is published normally.
    await sync_to_async(_pay_without_publishing)(first)
    await transition(order_id=second.pk, to_status=OrderStatus.PAID)

    frames = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert [(f["seq"], f["order"]["number"]) for f in frames] == [(1, first.number), (2, second.number)]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _pay_without_publishing(order):
    from django.db import transaction

    from notifications.services import notifications_batched

    # A batch whose after-commit publish is thrown away, as if the process died.
    with transaction.atomic():
        with notifications_batched():
            order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
        transaction.get_connection().run_on_commit.clear()


@pytest.mark.parametrize(
    ("query", "prepare"),
    [
        ("?after=99", "nothing"),  # a seq never issued (another database, a restored backup)
        ("?after=0", "prune_first"),  # part of what was missed is gone
        ("?after=0", "too_many"),  # more than NOTIFICATION_MAX_BACKLOG missed
    ],
)
async def test_reset_when_the_backlog_cannot_be_replayed(query, prepare, settings):
    settings.NOTIFICATION_MAX_BACKLOG = 2
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED if prepare == "too_many" else OrderStatus.PAID)
    if prepare == "prune_first":
        await sync_to_async(Notification.objects.filter(seq=1).delete)()

    communicator, _ = await open_socket(customer, query=query)

    assert await communicator.receive_json_from() == {"type": "reset"}
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "9" * 30])
async def test_invalid_after_is_an_error_then_a_reset(after):
    customer = await make_user()
    communicator, _ = await open_socket(customer, query=f"?after={after}")
    assert (await communicator.receive_json_from())["code"] == "invalid_after"
    assert await communicator.receive_json_from() == {"type": "reset"}
    await communicator.disconnect()


async def test_after_cannot_read_another_users_notifications():
    alice, bob = await make_user(), await make_user()
    await place(customer=bob, status=OrderStatus.SHIPPED)
    communicator, hello = await open_socket(alice, query="?after=0")
    assert hello["last_seq"] == 0
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


# --- Client messages --------------------------------------------------------------------------


async def test_ping_gets_pong():
    communicator, _ = await open_socket(await make_user())
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_mark_read_updates_the_badge_on_every_socket_of_the_user():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.SHIPPED)  # three unread
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)

    await first.send_json_to({"type": "mark_read", "seq": 3})
    marked = {"type": "unread", "unread": 2, "unread_version": 4, "read_seqs": [3]}
    assert await first.receive_json_from(timeout=5) == marked
    assert await second.receive_json_from(timeout=5) == marked

    await second.send_json_to({"type": "mark_all_read"})
    # The next frame within NOTIFICATION_UNREAD_FRAME_INTERVAL waits for it; then it comes.
    all_marked = {"type": "unread", "unread": 0, "unread_version": 5, "read_seqs": None}
    assert await first.receive_json_from(timeout=5) == all_marked
    assert await second.receive_json_from(timeout=5) == all_marked
    await first.disconnect()
    await second.disconnect()


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ({"text_data": "{not json"}, "invalid_json"),
        ({"bytes_data": b"\x00\x01binary"}, "binary_not_supported"),
        ({"text_data": "[1, 2, 3]"}, "invalid_message"),
        ({"text_data": '"ping"'}, "invalid_message"),
        ({"text_data": "{}"}, "invalid_message"),
        ({"text_data": '{"type": 7}'}, "invalid_message"),
        ({"text_data": '{"type": "subscribe", "group": "user_1"}'}, "unknown_type"),
        ({"text_data": '{"type": "mark_read"}'}, "invalid_field"),
        ({"text_data": '{"type": "mark_read", "seq": "3"}'}, "invalid_field"),
        ({"text_data": '{"type": "mark_read", "seq": -1}'}, "invalid_field"),
        ({"text_data": '{"type": "mark_read", "seq": true}'}, "invalid_field"),
        ({"text_data": '{"type": "mark_read", "seq": 1e400}'}, "invalid_field"),
    ],
)
async def test_bad_input_gets_an_error_frame_and_the_socket_stays_usable(send, code):
    communicator, _ = await open_socket(await make_user())
    await communicator.send_to(**send)
    frame = await communicator.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", code)
    assert frame["detail"]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_oversized_message_is_refused_and_closed_with_4009(settings):
    communicator, _ = await open_socket(await make_user())
    padding = "x" * settings.NOTIFICATION_SOCKET_MAX_MESSAGE_BYTES
    await communicator.send_to(text_data='{"type": "ping", "pad": "' + padding + '"}')
    assert (await communicator.receive_json_from())["code"] == "too_large"
    assert await closed_with(communicator) == 4009


async def test_a_flooding_client_is_rate_limited_then_closed():
    communicator, _ = await open_socket(await make_user())
    for _ in range(60):
        await communicator.send_json_to({"type": "ping"})
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
    assert 0 < sum('"pong"' in frame for frame in frames) <= 10


# Session end (logout, new password, deactivation): test_consumer_session_end.py


async def test_a_layer_message_of_a_type_this_version_does_not_know_is_dropped_and_the_socket_keeps_delivering(
    caplog, monkeypatch
):
    """Mid-deploy, an older or newer process may send types this one has no handler for."""
    monkeypatch.setattr(consumers, "_unknown_message_types", set())  # as if this process had seen none yet
    customer = await make_user()
    order = await place(customer=customer)
    communicator, _ = await open_socket(customer)

    for _ in range(2):
        await get_channel_layer().group_send(user_group(customer.pk), {"type": "from.a.later.version", "x": 1})
    await transition(order_id=order.pk, to_status=OrderStatus.PAID)

    frame = await communicator.receive_json_from(timeout=5)
    assert (frame["type"], frame["order"]["status"]) == ("notification", OrderStatus.PAID)
    assert await communicator.receive_nothing(timeout=0.3)
    unknown = [r for r in caplog.records if "unknown type 'from.a.later.version'" in r.getMessage()]
    assert len(unknown) == 1
    await communicator.disconnect()
