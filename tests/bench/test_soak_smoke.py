"""`make soak`'s loop at small scale against the e2e servers: samples taken, a verdict given, every notification once.

`make soak` judges memory and Redis over half an hour; this only proves, in 30 seconds, that the loop samples,
that churned sockets come back, and that every customer ends with each of their notifications exactly once, in
order, as the database has them (never a figure of memory or speed: those need the half hour).
"""

import pytest
from django.conf import settings

from bench import soak
from bench.data import customers_create
from bench.load import Generators, Triggers
from tests.conftest import requires_postgres
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

SOCKETS = 40
SECONDS = 30
SAMPLE_SECONDS = 5


def test_a_short_soak_samples_the_server_and_redis_and_every_customer_ends_with_each_notification_once_in_order(
    stack,
):
    customers = customers_create(SOCKETS, run="soak")
    with Generators(2) as generators, Triggers(2, stack.env) as triggers:
        result = soak.soak(generators, triggers, stack.web, customers, redis_url=settings.REDIS_URL, seconds=SECONDS,
                           churn=4, changes=10, sample_seconds=SAMPLE_SECONDS)  # fmt: skip

    # A sample at the start, one per interval of changes (as many as fit: a crowded machine makes them longer), one
    # once everything settled; each read the server and Redis.
    minutes = [sample["minute"] for sample in result["samples"]]
    assert len(minutes) >= 3 and minutes == sorted(minutes)
    for sample in result["samples"]:
        assert sample["rss_mb"] > 0 and sample["ws_connections"] is not None and sample["redis_keys"] > 0
    assert result["samples"][-1]["ws_connections"] == result["samples"][-1]["client_open"] == SOCKETS
    # Sockets closed and came back throughout (4 a second), each resuming with ?after=.
    assert result["generators"]["churned"] == result["generators"]["reconnects"] > SECONDS * 2
    assert result["generators"]["resets"] == 0
    assert result["changes"] == result["changes_scheduled"] > 0  # every change the triggers were given committed
    delivery = result["delivery"]
    assert delivery["notifications"] == result["changes"]  # one notification per change, to the order's customer
    assert (delivery["users_exact"], delivery["received"]) == (SOCKETS, delivery["notifications"])
    assert (delivery["lost"], delivery["duplicates"], delivery["out_of_order"]) == (0, 0, 0)
    assert result["foreign_frames"] == 0

    outcome = soak.verdict(result, SOCKETS, warmup=0, max_rss_growth=5.0, max_key_growth=0)
    assert outcome["samples_after_warmup"] == len(minutes)
    assert outcome["rss_mb_per_10_minutes"] is not None and outcome["redis_other_keys_growth"] is not None
    assert outcome["checks"]["delivery"] and outcome["checks"]["sockets"]
