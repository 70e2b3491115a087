"""Fault 11: isolation with 1,000 customers connected and all their orders changing.

It uses the benchmark's building blocks (bench/): customers with real sessions made in
bulk, and the load generators, which record every frame each socket gets.
"""

import random
from collections import Counter

import httpx

from bench import scenarios
from bench.data import customers_create
from bench.load import Generators, Triggers
from orders.models import format_order_number
from tests.conftest import requires_postgres, requires_redis
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

ISOLATION_CUSTOMERS = 1000


def test_with_a_thousand_customers_connected_every_frame_reaches_only_its_owner(cluster):
    web = cluster.web()
    customers = customers_create(ISOLATION_CUSTOMERS, run="isolation")
    # The triggers get the servers' database and channel layer.
    with Generators(2) as generators, Triggers(2, cluster.env) as triggers:
        storm = scenarios.storm(generators, [web], customers, concurrency=100)
        assert (storm["connected"], storm["failures"]) == (ISOLATION_CUSTOMERS, {})

        # Every customer's order changes at once (the admin's bulk action), then a steady stream.
        burst = scenarios.burst(generators, customers, size=ISOLATION_CUSTOMERS)
        steady = scenarios.latency(generators, triggers, [web], customers, rate=50, seconds=4)

    # A frame for another user's order, a second hello, or a staff-only frame counts as foreign.
    for run in (burst, steady):
        assert (run["lost"], run["duplicates"], run["foreign_frames"]) == (0, 0, 0)
    assert burst["received"] == ISOLATION_CUSTOMERS
    assert steady["received"] == steady["changes"]

    # And by number, over HTTP: another customer's order page is a 404, whoever asks.
    pairs = random.Random(11).sample(range(ISOLATION_CUSTOMERS), 40)
    with httpx.Client(base_url=web.base_url) as client:
        statuses = Counter(
            client.get(
                f"/orders/{format_order_number(customers[(i + 1) % ISOLATION_CUSTOMERS].order_id)}/",
                headers={"Cookie": f"sessionid={customers[i].session_key}"},
            ).status_code
            for i in pairs
        )
        first = customers[0]
        cookie = {"Cookie": f"sessionid={first.session_key}"}
        own = client.get(f"/orders/{format_order_number(first.order_id)}/", headers=cookie)
    assert statuses == {404: len(pairs)}
    assert own.status_code == 200

    record(
        "isolation_under_load",
        customers=ISOLATION_CUSTOMERS,
        notifications_committed=burst["received"] + burst["lost"] + steady["changes"],
        notifications_received=burst["received"] + steady["received"],
        lost=burst["lost"] + steady["lost"],
        duplicates=burst["duplicates"] + steady["duplicates"],
        foreign_frames=burst["foreign_frames"] + steady["foreign_frames"],
        cross_customer_requests=len(pairs),
        cross_customer_404=statuses[404],
    )
