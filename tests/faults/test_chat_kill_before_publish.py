"""Fault 2c: the customer's web process is SIGKILLed after their chat message committed, before it was published.

The customer's page is on daphne A, the staff member's on daphne B, both watching the conversation; no Celery
worker or beat runs (nothing sweeps chat messages). The message is in the database and nowhere else: it reaches
both sides by the page's resume (tests/faults/client.py, ChatClient: `chat.open` after its last seq, then the
unacknowledged `chat.send` again with its client_id, whose republish the staff socket hears), once.
"""

import asyncio
import time

from orders.models import Order
from support.models import Message
from tests.conftest import requires_postgres, requires_redis
from tests.factories import StaffFactory, UserFactory, place_order
from tests.faults.client import ChatClient, in_thread, sessions_for, wait_until
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

KILLSWITCH = "tests.faults.settings_kill_before_chat_publish"
CUSTOMERS = 10
MESSAGES_EACH = 6
STAFF_CONVERSATIONS_PER_SOCKET = 5  # a staff tab's chat.opens stay under the socket's 10/second
STREAM_INTERVAL = 0.05  # 20 messages a second over all the customers
# Every chat.send counts against the user's limit, retries too; this stream writes faster than people type.
STREAM_LIMITS = {"CHAT_SEND_RATE_LIMIT": "1000/second"}


def conversation_rows(order_ids) -> dict[int, list[tuple[int, str, str]]]:
    """Each order's messages as stored: (seq, body, client_id), in seq order."""
    rows = {order_id: [] for order_id in order_ids}
    stored = Message.objects.filter(conversation__order_id__in=order_ids).order_by("conversation__order_id", "seq")
    for order_id, seq, body, client_id in stored.values_list("conversation__order_id", "seq", "body", "client_id"):
        rows[order_id].append((seq, body, str(client_id)))
    return rows


def customers_with_orders(count: int) -> tuple[list, dict[int, Order]]:
    customers = [UserFactory() for _ in range(count)]
    return customers, {customer.pk: place_order(customer=customer) for customer in customers}


async def test_a_message_committed_by_a_process_killed_before_publishing_reaches_both_sides_once_by_resume(cluster):
    # A's first chat publish (the customer's question) goes out; it dies at its second.
    doomed = cluster.web("daphne-customer", settings_module=KILLSWITCH, extra_env={"FAULT_KILL_AT_PUBLISH": "2"})
    staff_server = cluster.web("daphne-staff")
    (customer,), orders = await in_thread(customers_with_orders, 1)
    staff = await in_thread(StaffFactory)
    sessions = await in_thread(sessions_for, [customer, staff])
    order_id = orders[customer.pk].pk
    page = ChatClient([doomed], sessions[customer.pk], orders=[order_id]).start()
    desk = ChatClient([staff_server], sessions[staff.pk], orders=[order_id]).start()
    customer_view, staff_view = page.views[order_id], desk.views[order_id]
    await wait_until(lambda: customer_view.opened == staff_view.opened == 1, deadline=20)

    await page.write(order_id, "The parcel says delivered but it isn't here")
    await wait_until(lambda: customer_view.shown == staff_view.shown == [1], deadline=10)
    await desk.write(order_id, "Let me ask the courier.")
    await wait_until(lambda: customer_view.shown == [1, 2], deadline=10)

    killed_at = time.monotonic()
    retried = await page.write(order_id, "Found it behind the bins, sorry!")
    await asyncio.to_thread(doomed.process.process.wait, 10)
    restarted = await asyncio.to_thread(cluster.web, "daphne-customer-restarted", port=doomed.port)
    restarted_after = time.monotonic() - killed_at
    customer_after = await wait_until(lambda: customer_view.shown == [1, 2, 3] and not page.pending, deadline=30)
    staff_after = await wait_until(lambda: staff_view.shown == [1, 2, 3], deadline=10)
    # The retry's republish went out before its chat.sent; staff's next message comes after it on every socket.
    await desk.write(order_id, "Glad it turned up.")
    await wait_until(lambda: customer_view.shown == [1, 2, 3, 4], deadline=10)
    rows = (await in_thread(conversation_rows, [order_id]))[order_id]
    await page.stop()
    await desk.stop()

    record(
        "chat_kill_before_publish",
        killed_process_exit_code=doomed.process.process.returncode,
        messages_committed=len(rows),
        restarted_seconds_after_the_kill=round(restarted_after, 2),
        delivered_to_the_customer_by_resume_seconds_after_the_kill=round(restarted_after + customer_after, 2),
        delivered_to_staff_on_the_other_process_seconds_after_the_kill=round(
            restarted_after + customer_after + staff_after, 2
        ),
        sends_of_the_killed_message=page.sends[retried],
        customer_frames=page.views[order_id].frames,
        staff_frames=desk.views[order_id].frames,
    )
    assert doomed.process.process.returncode == -9
    assert restarted.port == doomed.port
    assert [(seq, client_id) for seq, _, client_id in rows][2:] == [(3, retried), (4, desk.written[1])]
    assert [seq for seq, *_ in rows] == [1, 2, 3, 4]  # sent twice, stored once
    # The customer's page, socket by socket (1: on A until the kill; 2: on A restarted). Socket 1 got nothing of
    # seq 3. Socket 2 re-opened after seq 2 (chat.opened's last_seq counts its backlog) and got 3 from the backlog,
    # then the retry's chat.sent for it, which only acknowledged the send (no second chat.message: the socket had
    # sent it), then staff's reply.
    assert customer_view.frames == [
        (1, "chat.opened", 0), (1, "chat.sent", 1), (1, "chat.message", 2),
        (2, "chat.opened", 3), (2, "chat.message", 3), (2, "chat.sent", 3), (2, "chat.message", 4),
    ]  # fmt: skip
    assert customer_view.opened_after == [0, 2]
    assert customer_view.shown == [1, 2, 3, 4] and customer_view.bodies[3] == "Found it behind the bins, sorry!"
    assert (page.sends[retried], page.resent, customer_view.acks_of_shown) == (2, 1, 1)
    # Staff, on B throughout: seq 3 once, live from the retry's republish.
    assert staff_view.frames == [
        (1, "chat.opened", 0), (1, "chat.message", 1), (1, "chat.sent", 2), (1, "chat.message", 3), (1, "chat.sent", 4),
    ]  # fmt: skip
    assert desk.connects == 1
    for client in (page, desk):
        view = client.views[order_id]
        assert (view.dropped, view.gaps, client.errors, client.pending) == (0, 0, [], {})


async def test_a_stream_cut_by_the_kill_reaches_both_sides_once_each_in_the_order_written(cluster):
    kill_at = CUSTOMERS * MESSAGES_EACH // 2
    doomed = cluster.web(
        "daphne-customers",
        settings_module=KILLSWITCH,
        extra_env={**STREAM_LIMITS, "FAULT_KILL_AT_PUBLISH": str(kill_at)},
    )
    survivor = cluster.web("daphne-staff", extra_env=STREAM_LIMITS)
    customers, orders = await in_thread(customers_with_orders, CUSTOMERS)
    staff = await in_thread(StaffFactory)
    sessions = await in_thread(sessions_for, [*customers, staff])
    order_ids = [orders[customer.pk].pk for customer in customers]
    # Half the pages reconnect to the other process (behind a load balancer), half wait for theirs to come back.
    pages = {
        orders[customer.pk].pk: ChatClient(
            [doomed, survivor] if index % 2 else [doomed], sessions[customer.pk], orders=[orders[customer.pk].pk]
        ).start()
        for index, customer in enumerate(customers)
    }
    moving = [page for page in pages.values() if len(page.servers) == 2]
    desks = [
        ChatClient([survivor], sessions[staff.pk], orders=order_ids[start : start + STAFF_CONVERSATIONS_PER_SOCKET])
        for start in range(0, CUSTOMERS, STAFF_CONVERSATIONS_PER_SOCKET)
    ]
    for desk in desks:
        desk.start()
    clients = [*pages.values(), *desks]
    await wait_until(lambda: all(view.opened == 1 for c in clients for view in c.views.values()), deadline=30)

    async def stream():
        for number in range(1, MESSAGES_EACH + 1):
            for order_id, page in pages.items():
                await page.write(order_id, f"message {number}")
                await asyncio.sleep(STREAM_INTERVAL)  # the pace of the stream, not synchronisation

    started_at = time.monotonic()
    writing = asyncio.create_task(stream())
    await asyncio.to_thread(doomed.process.process.wait, 30)
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.web, "daphne-customers-restarted", extra_env=STREAM_LIMITS, port=doomed.port)
    restarted_after = time.monotonic() - killed_at
    await writing
    expected = list(range(1, MESSAGES_EACH + 1))

    def behind() -> dict:
        pages_behind = {o: (p.views[o].shown, len(p.pending)) for o, p in pages.items() if p.views[o].shown != expected}
        pending = {o: len(p.pending) for o, p in pages.items() if p.pending}
        staff_behind = {o: v.shown for d in desks for o, v in d.views.items() if v.shown != expected}
        return {"pages": pages_behind, "pending": pending, "staff": staff_behind}

    caught_up_after = await wait_until(lambda: not any(behind().values()), deadline=60, describe=behind)
    caught_up_after += restarted_after
    rows = await in_thread(conversation_rows, order_ids)
    for client in clients:
        await client.stop()

    written = CUSTOMERS * MESSAGES_EACH
    staff_views = [view for desk in desks for view in desk.views.values()]
    customer_views = [page.views[order_id] for order_id, page in pages.items()]
    record(
        "chat_kill_before_publish_stream",
        killed_process_exit_code=doomed.process.process.returncode,
        customers=CUSTOMERS,
        staff_sockets=len(desks),
        killed_at_publish=kill_at,
        killed_seconds_into_the_stream=round(killed_at - started_at, 2),
        messages_written=written,
        messages_committed=sum(len(conversation) for conversation in rows.values()),
        delivered_to_customers=sum(len(view.shown) for view in customer_views),
        delivered_to_staff=sum(len(view.shown) for view in staff_views),
        lost=2 * written - sum(len(view.shown) for view in customer_views + staff_views),
        sends_retried=sum(page.resent for page in pages.values()),
        retries_of_a_stored_message=sum(view.acks_of_shown for view in customer_views),
        duplicate_chat_messages=sum(view.dropped for view in customer_views + staff_views),
        reconnects=sum(page.connects for page in pages.values()) - len(pages),
        back_on_the_other_process_seconds_after_the_kill=round(max(p.hello_times[1] for p in moving) - killed_at, 2),
        back_on_the_restarted_process_seconds_after_the_kill=round(
            max(p.hello_times[1] for p in pages.values() if len(p.servers) == 1) - killed_at, 2
        ),
        restarted_seconds_after_the_kill=round(restarted_after, 2),
        all_caught_up_seconds_after_the_kill=round(caught_up_after, 2),
    )
    assert doomed.process.process.returncode == -9
    for order_id, page in pages.items():
        # One row per message written, in the order written, whatever the process that stored it.
        assert rows[order_id] == [(seq, f"message {seq}", page.written[seq - 1]) for seq in expected]
        assert [page.acked[client_id] for client_id in page.written] == expected
        assert page.views[order_id].bodies == {seq: f"message {seq}" for seq in expected}
    assert all(page.connects == 2 for page in pages.values())  # every page on A lost its socket once
    assert sum(view.acks_of_shown for view in customer_views) >= 1  # the killed one at least
    for client in clients:
        assert client.errors == []
        for view in client.views.values():
            # Each seq in one frame, a chat.message or the chat.sent that took its place; no gap.
            delivering = [seq for _, kind, seq in view.frames if kind == "chat.message"]
            assert len(delivering) == len(set(delivering)), view.frames
            assert (view.shown, view.dropped, view.gaps) == (expected, 0, 0)
    assert all(desk.connects == 1 for desk in desks)
