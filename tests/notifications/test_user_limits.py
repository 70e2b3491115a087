"""Per-user limits on the socket: a cap on open sockets, one message rate over all of them, coalesced `unread`
frames, and the amplification attack they stop (docs/reliability.md, probe row 4)."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from notifications.models import Notification
from notifications.user_limits import (
    SocketWindows,
    rate_limits,
    socket_registry,
    user_socket_register,
    user_socket_unregister,
)
from orders.models import OrderStatus
from tests.notifications.test_consumer import closed_with, frames_until_quiet, make_user, open_socket, place, transition

pytestmark = [pytest.mark.django_db(transaction=True)]


async def unread_left(user) -> int:
    return await sync_to_async(Notification.objects.filter(recipient=user, read_at=None).count)()


async def wait_until_all_read(user, *, deadline: float = 10) -> None:
    """Poll (with a deadline) until the database shows every notification of `user` read."""
    async with asyncio.timeout(deadline):
        while await unread_left(user):
            await asyncio.sleep(0.02)


# --- The socket cap ---------------------------------------------------------------------------


async def test_a_socket_beyond_the_cap_closes_the_users_oldest_with_4409(settings):
    settings.NOTIFICATION_SOCKETS_PER_USER = 3
    customer, bystander = await make_user(), await make_user()
    bystanders_socket, _ = await open_socket(bystander)
    sockets = [(await open_socket(customer))[0] for _ in range(3)]

    newest, _ = await open_socket(customer)

    assert await closed_with(sockets[0], timeout=5) == 4409
    for still_open in [*sockets[1:], newest, bystanders_socket]:
        await still_open.send_json_to({"type": "ping"})
        assert await still_open.receive_json_from(timeout=5) == {"type": "pong"}
    for communicator in [*sockets, newest, bystanders_socket]:
        await communicator.disconnect()


async def test_a_closed_socket_gives_its_place_back(settings):
    settings.NOTIFICATION_SOCKETS_PER_USER = 2
    customer = await make_user()
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)
    await first.disconnect()

    third, _ = await open_socket(customer)

    assert await second.receive_nothing(timeout=0.5)  # not closed: the cap counts open sockets only
    await second.disconnect()
    await third.disconnect()


async def test_each_socket_is_registered_under_its_process_and_the_oldest_is_named_by_its_channel(settings):
    settings.NOTIFICATION_SOCKETS_PER_USER = 1
    registry = socket_registry()
    key = registry.sockets_key(10**9)
    # One of another process (it says who is still alive: support/presence.py), then one of this process.
    await registry.client.zadd(key, {"elsewhere specific.old!1": time.time() * 1000 - 1000})

    assert await user_socket_register(user_id=10**9, channel_name="specific.new!2") == ["specific.old!1"]
    assert await registry.client.zrange(key, 0, -1) == [f"{registry.process} specific.new!2".encode()]
    await user_socket_unregister(user_id=10**9, channel_name="specific.new!2")
    assert await registry.client.zcard(key) == 0


async def test_without_redis_the_cap_is_kept_in_the_process(settings):
    settings.REDIS = ""  # embedded mode: one process, no Redis
    settings.NOTIFICATION_SOCKETS_PER_USER = 2
    assert await user_socket_register(user_id=1, channel_name="a") == []
    assert await user_socket_register(user_id=1, channel_name="b") == []
    assert await user_socket_register(user_id=2, channel_name="other user") == []
    assert await user_socket_register(user_id=1, channel_name="c") == ["a"]
    await user_socket_unregister(user_id=1, channel_name="b")
    assert await user_socket_register(user_id=1, channel_name="d") == []
    assert await user_socket_register(user_id=1, channel_name="e") == ["c"]
    for user_id, name in [(1, "d"), (1, "e"), (2, "other user")]:
        await user_socket_unregister(user_id=user_id, channel_name=name)


# --- The per-user message rate ------------------------------------------------------------------


async def test_the_message_rate_limit_counts_every_socket_of_the_user_together(settings):
    settings.NOTIFICATION_USER_RATE_LIMIT = "5/minute"
    customer, bystander = await make_user(), await make_user()
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)
    bystanders_socket, _ = await open_socket(bystander)

    replies = []
    for communicator in [first, first, first, second, second, second]:
        await communicator.send_json_to({"type": "ping"})
        replies.append((await communicator.receive_json_from(timeout=5))["type"])

    assert replies == ["pong"] * 5 + ["error"]
    await bystanders_socket.send_json_to({"type": "ping"})
    assert await bystanders_socket.receive_json_from(timeout=5) == {"type": "pong"}
    for communicator in [first, second, bystanders_socket]:
        await communicator.disconnect()


# --- Coalesced unread frames --------------------------------------------------------------------


async def test_a_mark_read_that_changes_nothing_sends_nothing():
    customer = await make_user()
    await place(customer=customer, status=OrderStatus.PAID)
    first, _ = await open_socket(customer)
    second, _ = await open_socket(customer)
    await first.send_json_to({"type": "mark_all_read"})
    assert (await second.receive_json_from(timeout=5))["unread"] == 0

    for message in [{"type": "mark_all_read"}, {"type": "mark_read", "seq": 1}, {"type": "mark_read", "seq": 99}]:
        await first.send_json_to(message)
    await first.send_json_to({"type": "ping"})

    assert await first.receive_json_from(timeout=5) == {"type": "unread", "unread": 0, "unread_version": 2,
                                                          "read_seqs": None}  # fmt: skip
    assert await first.receive_json_from(timeout=5) == {"type": "pong"}
    assert await second.receive_nothing(timeout=0.5)
    await first.disconnect()
    await second.disconnect()


async def test_a_burst_of_mark_reads_reaches_another_socket_as_one_frame_then_one_with_the_rest(settings):
    settings.NOTIFICATION_UNREAD_FRAME_INTERVAL = 3600  # nothing but the next notification lets the rest out
    customer = await make_user()
    orders = [await place(customer=customer, status=OrderStatus.PAID) for _ in range(5)]  # seqs 1..5
    marking, watching = (await open_socket(customer))[0], (await open_socket(customer))[0]

    for seq in range(1, 6):
        await marking.send_json_to({"type": "mark_read", "seq": seq})
    await wait_until_all_read(customer)
    during_burst = await frames_until_quiet(watching)
    await transition(order_id=orders[0].pk, to_status=OrderStatus.PROCESSING)  # seq 6, unread 1
    after_burst = await frames_until_quiet(watching)

    assert during_burst == [{"type": "unread", "unread": 4, "unread_version": 6, "read_seqs": [1]}]
    assert [(frame["type"], frame["unread"], frame["unread_version"]) for frame in after_burst] == [
        ("unread", 0, 10),
        ("notification", 1, 11),
    ]
    assert after_burst[0]["read_seqs"] == [2, 3, 4, 5]
    await marking.disconnect()
    await watching.disconnect()


async def test_a_held_unread_frame_is_sent_once_the_interval_has_passed(settings):
    settings.NOTIFICATION_UNREAD_FRAME_INTERVAL = 0.2
    customer = await make_user()
    for _ in range(5):
        await place(customer=customer, status=OrderStatus.PAID)
    marking, watching = (await open_socket(customer))[0], (await open_socket(customer))[0]

    for seq in range(1, 6):
        await marking.send_json_to({"type": "mark_read", "seq": seq})

    frames = []
    async with asyncio.timeout(10):  # a deadline, not a pause: the last frame comes after the interval
        while not frames or frames[-1]["unread"] != 0:
            frames.append(await watching.receive_json_from(timeout=5))
    assert {seq for frame in frames for seq in frame["read_seqs"]} == {1, 2, 3, 4, 5}
    assert frames[-1]["unread_version"] == 10
    await marking.disconnect()
    await watching.disconnect()


# --- The attack: one account amplifying its traffic ----------------------------------------------


async def test_many_sockets_of_one_user_marking_all_read_cannot_flood_another_users_socket(settings):
    """The probe's attack: 60 sockets of one customer, each sending mark_all_read within its own limit, while
    another customer is being notified. Before: all 60 stayed open and every message sent an `unread` frame to
    every one of them (60 x 60 per round). Now: 20 stay open, one frame per socket for the one real change."""
    attacker, victim = await make_user(), await make_user()
    await place(customer=attacker, status=OrderStatus.PAID)  # one unread
    victims_orders = [await place(customer=victim) for _ in range(10)]
    victims_socket, _ = await open_socket(victim)
    attackers_sockets = [(await open_socket(attacker))[0] for _ in range(60)]

    cap = settings.NOTIFICATION_SOCKETS_PER_USER
    replaced, survivors = attackers_sockets[:-cap], attackers_sockets[-cap:]
    assert [await closed_with(communicator, timeout=5) for communicator in replaced] == [4409] * (60 - cap)

    for _ in range(5):  # 5 messages per socket: within the per-socket 10/second
        for communicator in survivors:
            await communicator.send_json_to({"type": "mark_all_read"})
    for order in victims_orders:
        await transition(order_id=order.pk, to_status=OrderStatus.PAID)

    victims_frames = await frames_until_quiet(victims_socket, quiet=0.5)
    attackers_frames = [frame for communicator in survivors for frame in await frames_until_quiet(communicator)]

    assert [(frame["type"], frame["seq"]) for frame in victims_frames] == [("notification", n) for n in range(1, 11)]
    unread_frames = [frame for frame in attackers_frames if frame["type"] == "unread"]
    assert len(unread_frames) == cap  # the one mark_all_read that changed something, once per open socket
    assert {frame["unread"] for frame in unread_frames} == {0}
    assert all(frame == {"type": "error", "code": "rate_limited", "detail": frame["detail"]}
               for frame in attackers_frames if frame["type"] != "unread")  # fmt: skip
    assert len(attackers_frames) <= 2 * cap  # at most one rate_limited error per socket besides
    for communicator in [*attackers_sockets, victims_socket]:
        await communicator.disconnect()


def test_a_sockets_own_windows_refuse_past_each_limit_and_count_no_refused_message():
    windows = SocketWindows(rate_limits("10/second;12/minute"))
    assert all(windows.hit(100.0 + i / 100) for i in range(10))
    assert not windows.hit(100.5)  # the 11th within a second
    assert windows.hit(101.0) and windows.hit(101.1)  # the first ones left the second: 12 in the minute
    assert not windows.hit(102.5)  # the minute's limit, though the second has room
    assert not windows.hit(159.9)
    assert windows.hit(160.0)  # the first message left the minute; the refused ones never counted
