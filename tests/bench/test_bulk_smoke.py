"""The bulk scenario at small scale against the e2e servers: both paths deliver every change once, to its owner.

`make bench BENCH_ARGS="--bulk"` measures speed; this only proves its measuring code is correct (never a time).
"""

import pytest

from bench.bulk import PATHS, bulk_action, bulk_markdown
from bench.data import customers_create, orders_reset
from bench.load import Generators
from bench.scenarios import storm
from tests.conftest import requires_postgres
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

ORDERS, SOCKETS = 40, 30


def test_both_paths_move_every_order_and_every_connected_customer_hears_of_theirs_once(stack):
    customers = customers_create(ORDERS, run="bulk-smoke")
    with Generators(2) as generators:
        opened = storm(generators, [stack.web], customers[:SOCKETS], concurrency=10)
        assert (opened["connected"], opened["failures"]) == (SOCKETS, {})
        actions = []
        for path in PATHS:
            orders_reset([customer.order_id for customer in customers])
            actions.append({"round": 1, **bulk_action(generators, customers, customers[:SOCKETS], path=path)})

    for action in actions:
        assert action["orders"] == ORDERS
        assert (action["received"], action["lost"], action["duplicates"], action["foreign_frames"]) == (
            SOCKETS,
            0,
            0,
            0,
        )
    report = {"started": "now", "minutes": 1, "command": "make bench", "bulk": {"sockets": SOCKETS, "actions": actions},
              "machine": {"cores": 2, "cpu": "cpu", "python": "3.11"}}  # fmt: skip
    assert bulk_markdown(report).count("\n| ") == 1 + len(PATHS)  # the header and a row per action
