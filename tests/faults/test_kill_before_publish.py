"""Fault 2: a web process is SIGKILLed after a staff change commits and before it is published."""

import asyncio
import time

import httpx
import pytest

from notifications.models import Notification
from orders.models import Order, OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import StaffFactory, UserFactory, place_order
from tests.faults.client import ResilientClient, in_thread, wait_until
from tests.faults.conftest import record
from tests.live.clients import Browser
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]


async def test_change_committed_by_a_process_killed_before_publishing_still_reaches_the_customer(cluster, servers_user):
    doomed = cluster.web("daphne-doomed", settings_module="tests.faults.settings_kill_before_publish")
    survivor = cluster.web("daphne-survivor")
    cluster.worker()
    cluster.beat()
    customer = await in_thread(lambda: servers_user(UserFactory()))
    staff = await in_thread(lambda: servers_user(StaffFactory()))
    order = await in_thread(place_order, customer=customer, status=OrderStatus.PAID)

    shopper = await Browser(survivor.base_url).login(customer.username)
    # Two tabs behind a load balancer: one on the survivor, which only the sweeper can reach
    # (nothing makes it reconnect), and one on the doomed server, which reconnects and resumes.
    watching = ResilientClient([survivor], shopper.session_id, last_seq=1).start()
    client = ResilientClient([doomed, survivor], shopper.session_id, last_seq=1).start()
    await wait_until(lambda: client.connects == 1 and watching.connects == 1, deadline=20)

    admin = await Browser(doomed.base_url).login(staff.username)
    changed_at = time.monotonic()
    with pytest.raises(httpx.TransportError):  # the server dies mid-request: no answer comes back
        await admin.admin_change_status(
            order.pk, OrderStatus.PROCESSING, internal_note="shipped from the doomed server"
        )
    await asyncio.to_thread(doomed.process.process.wait, 10)

    resumed_after = await wait_until(lambda: client.delivered == [2], deadline=30)
    swept_after = await wait_until(lambda: watching.delivered == [2], deadline=30)
    status, notifications = await in_thread(
        lambda: (
            Order.objects.get(pk=order.pk).status,
            list(Notification.objects.filter(recipient=customer).values_list("seq", "published_at")),
        )
    )
    await client.stop()
    await watching.stop()
    await shopper.aclose()
    await admin.aclose()

    record(
        "kill_before_publish",
        killed_process_exit_code=doomed.process.process.returncode,
        notifications_committed=1,
        tabs=2,
        delivered_to_tab_on_the_killed_server_by_resume_seconds=round(resumed_after, 2),
        delivered_to_tab_on_the_survivor_by_the_sweeper_seconds=round(swept_after, 2),
        lost=2 - len(client.delivered) - len(watching.delivered),
        duplicate_frames_dropped_by_seq=client.duplicates + watching.duplicates,
        seconds_from_change_to_both_delivered=round(time.monotonic() - changed_at, 2),
        close_codes_on_the_killed_server=client.close_codes,
    )
    assert doomed.process.process.returncode == -9
    assert status == OrderStatus.PROCESSING
    assert [seq for seq, _ in notifications] == [1, 2] and all(published for _, published in notifications)
    assert client.delivered == watching.delivered == [2]
