"""The pub/sub layer's subscriber connection drops and reconnects while Redis stays up: nothing is lost.

Redis delivers a PUBLISH only to connections subscribed at that moment. Whatever is
published while a web process's subscriber connection is down and resubscribing is
gone, and neither the process nor Redis reports it. notifications/layer_watch.py closes
the process's sockets with 4012 whenever that connection reconnects, so every page
resumes from the database.
"""

import time

import pytest
import redis
from django.conf import settings

from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.conftest import requires_postgres, requires_redis
from tests.faults.client import ResilientClient, customers_with_sessions, delivery_figures, in_thread, wait_until
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [
    live_db,
    requires_postgres(),
    requires_redis(),
    pytest.mark.skipif(
        settings.CHANNEL_LAYER_BACKEND != "pubsub", reason="only the pub/sub layer has a subscriber connection"
    ),
]

CUSTOMERS = 6


def kill_subscriber_connections(redis_url: str) -> int:
    """What a network blip or Redis's output-buffer limit does to a subscriber: its connection is cut."""
    return redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")


async def test_a_dropped_subscriber_connection_makes_its_sockets_resume_so_nothing_is_lost(cluster, private_redis):
    web = cluster.web()
    orders, sessions = await in_thread(customers_with_sessions, CUSTOMERS)
    clients = {pk: ResilientClient([web], sessions[pk], last_seq=1).start() for pk in sessions}
    await wait_until(lambda: all(c.connects == 1 for c in clients.values()), deadline=20)
    for order in orders.values():
        await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.PROCESSING)
    await wait_until(lambda: all(c.delivered == [2] for c in clients.values()), deadline=10)

    killed_at = time.monotonic()
    killed = await in_thread(kill_subscriber_connections, private_redis.url)
    # Published at once: the subscriber connection is down or resubscribing, so Redis may drop these.
    for order in orders.values():
        await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.SHIPPED)

    caught_up = await wait_until(
        lambda: all(c.delivered == [2, 3] and c.connects == 2 for c in clients.values()),
        deadline=20,
        describe=lambda: {pk: (c.delivered, c.close_codes) for pk, c in clients.items()},
    )
    for client in clients.values():
        await client.stop()
    record(
        "subscriber_reconnect",
        customers=CUSTOMERS,
        subscriber_connections_killed=killed,
        **delivery_figures(clients.values(), committed=2 * CUSTOMERS),
        seconds_from_kill_to_all_caught_up=round(time.monotonic() - killed_at, 2),
        seconds_waited=round(caught_up, 2),
    )
    assert killed == 1  # the one web process's subscriber connection
    assert all(c.close_codes == [4012] for c in clients.values())  # told to resume, not left deaf
