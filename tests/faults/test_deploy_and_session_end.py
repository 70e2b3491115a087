"""Fault 3: a web process stopped with SIGTERM (a deploy); item 12: a session's end on every process."""

import asyncio
import signal
import time

from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import ResilientClient, customers_with_sessions, delivery_figures, in_thread, wait_until
from tests.faults.conftest import record
from tests.live.clients import Browser
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

CUSTOMERS = 8


async def test_sigterm_on_a_web_process_sends_clients_to_the_other_one_with_nothing_lost(cluster):
    old, new = cluster.web("daphne-old"), cluster.web("daphne-new")
    orders, sessions = await in_thread(customers_with_sessions, CUSTOMERS)
    clients = {pk: ResilientClient([old, new], sessions[pk], last_seq=1).start() for pk in sessions}
    await wait_until(lambda: all(c.connects == 1 for c in clients.values()), deadline=20)

    # A change everyone sees, then the deploy stops the old process, then two more changes.
    for order in orders.values():
        await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.PROCESSING)
    stopped_at = time.monotonic()
    old.process.process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(old.process.process.wait, 20)
    for status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        for order in orders.values():
            await in_thread(order_transition, order_id=order.pk, to_status=status)

    back = await wait_until(lambda: all(c.delivered == [2, 3, 4] for c in clients.values()), deadline=30)
    figures = delivery_figures(clients.values(), committed=3 * len(clients))
    for client in clients.values():
        await client.stop()
    record(
        "web_process_sigterm",
        clients=len(clients),
        **figures,
        exit_code=old.process.process.returncode,
        seconds_from_sigterm_to_all_caught_up=round(time.monotonic() - stopped_at, 2),
        seconds_waited_for_delivery=round(back, 2),
    )
    assert all(c.delivered == [2, 3, 4] for c in clients.values())
    assert all(c.connects == 2 for c in clients.values())  # each moved to the new process once
    # The old process drains (shop/drain.py): every socket hears 1012 before it exits, none is dropped (1006).
    assert figures["close_codes"] == [1012]


async def test_logout_closes_that_sessions_sockets_on_every_process_and_no_other_devices(cluster, servers_user):
    first, second = cluster.web("daphne-a"), cluster.web("daphne-b")
    customer = await in_thread(lambda: servers_user(UserFactory()))
    other = await in_thread(lambda: servers_user(UserFactory()))
    order = await in_thread(place_order, customer=customer, status=OrderStatus.PAID)  # seq 1
    browser = await Browser(first.base_url).login(customer.username)
    other_device = await Browser(first.base_url).login(customer.username)
    bystander = await Browser(first.base_url).login(other.username)
    tabs = [ResilientClient([server], browser.session_id, last_seq=1).start() for server in (first, second)]
    other_device_tabs = [
        ResilientClient([server], other_device.session_id, last_seq=1).start() for server in (first, second)
    ]
    bystander_tab = ResilientClient([second], bystander.session_id).start()
    everyone = [*tabs, *other_device_tabs, bystander_tab]
    await wait_until(lambda: all(t.connects == 1 for t in everyone), deadline=20)

    logged_out_at = time.monotonic()
    await browser.logout()
    closed_within = await wait_until(lambda: all(t.close_codes == [4403] for t in tabs), deadline=5, interval=0.01)
    ended_by_themselves = [t._task.done() for t in tabs]  # 4403: the tab gave up, no reconnect
    # The other device's sockets stay open and still receive: a change after the logout reaches both.
    await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.PROCESSING)
    await wait_until(lambda: all(t.delivered == [2] for t in other_device_tabs), deadline=10)

    record(
        "session_end_on_every_process",
        processes=2,
        sockets_of_the_ended_session=len(tabs),
        seconds_from_logout_to_all_closed=round(closed_within, 3),
        close_codes=[t.close_codes for t in tabs],
        other_device_close_codes=[t.close_codes for t in other_device_tabs],
        other_device_delivered_after_logout=[t.delivered for t in other_device_tabs],
        bystander_still_connected=bystander_tab.close_codes == [],
    )
    for tab in everyone:
        await tab.stop()
    for each in (browser, other_device, bystander):
        await each.aclose()
    assert time.monotonic() - logged_out_at >= closed_within
    assert closed_within < 1.0
    assert ended_by_themselves == [True, True]
    assert all(t.connects == 1 for t in tabs)
    assert [t.close_codes for t in other_device_tabs] == [[], []]
    assert all(t.connects == 1 for t in other_device_tabs)
    assert bystander_tab.close_codes == []


HANDSHAKES = 150


async def test_no_socket_outlives_a_logout_that_races_its_handshake(cluster, servers_user):
    # The probe's attack 3: many handshakes of one session under way while it logs out.
    # One session's 150 tabs: above the per-user cap, the oldest would be replaced (4409) and reconnect.
    web = cluster.web("daphne-race", extra_env={"NOTIFICATION_SOCKETS_PER_USER": str(HANDSHAKES)})
    customer = await in_thread(lambda: servers_user(UserFactory()))
    order = await in_thread(place_order, customer=customer, status=OrderStatus.PAID)  # seq 1
    browser = await Browser(web.base_url).login(customer.username)
    tabs = [ResilientClient([web], browser.session_id, last_seq=1).start() for _ in range(HANDSHAKES)]
    await wait_until(lambda: sum(t.connects for t in tabs) >= HANDSHAKES // 2, deadline=30, interval=0.001)

    await browser.logout()  # with the rest of the handshakes still in flight
    # A change right after: a handshake that had re-checked just before the delete may replay it, then closes.
    await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.PROCESSING)
    # A survivor would live up to 24 h (daphne's --websocket_timeout); the closes take milliseconds.
    ended = await wait_until(
        lambda: all(t._task.done() for t in tabs),
        deadline=10,
        describe=lambda: f"{sum(not t._task.done() for t in tabs)} of {HANDSHAKES} sockets outlived the logout",
    )

    record(
        "logout_racing_handshakes",
        handshakes=HANDSHAKES,
        close_codes=sorted({code for t in tabs for code in t.close_codes}, key=str),
        closed_4403=sum(t.close_codes[-1:] == [4403] for t in tabs),
        closed_4401=sum(t.close_codes[-1:] == [4401] for t in tabs),
        seconds_until_every_socket_ended=round(ended, 2),
        replayed_the_change_before_their_4403=sum(t.delivered == [2] for t in tabs),
    )
    for tab in tabs:
        await tab.stop()
    await browser.aclose()
    assert all(t.close_codes[-1:] in ([4401], [4403]) for t in tabs)  # ended, not dropped
    assert all(t.connects == 1 for t in tabs)  # and none came back
