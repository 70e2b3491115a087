"""Fault 1c: the channel layer is sharded over two Redis servers, and one of them crashes mid-stream.

channels_redis places each group on one shard by its name (CHANNEL_LAYER_REDIS_URLS).
Losing a shard must interrupt only the customers whose groups it holds: layer_watch
closes their sockets, they resume by seq once it is back (the sweeper publishes what
failed meanwhile), and everyone else goes on hearing live. Figures: docs/operations.md,
"Sharding the channel layer".
"""

import asyncio
import statistics
import time

import pytest
import redis
from channels_redis.utils import _consistent_hash
from django.conf import settings
from django.db import connections

from notifications.groups import STAFF_GROUP
from notifications.layer_watch import CLOSE_SERVICE_RESTART
from notifications.models import Notification
from orders.models import OrderStatus
from orders.transitions import order_transition
from shop.channel_layers import channel_layers_config
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import (
    ChangeStream,
    ResilientClient,
    clients_behind,
    delivery_figures,
    in_thread,
    seqs_by_user,
    sessions_for,
    wait_until,
    wait_until_async,
)
from tests.faults.conftest import LAYER_PREFIX, record
from tests.live.servers import live_db
from tests.redis_server import RedisServer

pytestmark = [
    live_db,
    requires_postgres(),
    requires_redis(),
    pytest.mark.skipif(
        settings.CHANNEL_LAYER_BACKEND != "pubsub",
        reason="measured on the default layer; the core layer also loses every socket of a process whose inbox "
        "the shard held (docs/operations.md)",
    ),
]

CUSTOMERS = 40  # enough that both shards hold some of their groups
ORDERS_EACH = 2
CHANGE_INTERVAL = 0.04  # the stream's pace: about 20 status changes a second
OUTAGE_AFTER = 2.0
OUTAGE = 5.0
DELIVERY_DEADLINE = 10.0
RECOVERY_DEADLINE = 60.0


@pytest.fixture
def sharded_cluster(cluster, redis_shards, settings):
    """`cluster` whose processes, and this test process, shard the layer over `redis_shards`."""
    urls = [shard.url for shard in redis_shards]
    cluster.env["CHANNEL_LAYER_REDIS_URLS"] = ",".join(urls)
    settings.CHANNEL_LAYERS = channel_layers_config(cluster.redis.url, "pubsub", LAYER_PREFIX, shard_urls=urls)
    return cluster


def shop_with_customers():
    """Customers with paid orders, and a real session cookie for each."""
    customers = [UserFactory() for _ in range(CUSTOMERS)]
    orders = [
        place_order(customer=customer, status=OrderStatus.PAID) for customer in customers for _ in range(ORDERS_EACH)
    ]
    sessions = sessions_for(customers)
    connections.close_all()
    return orders, sessions


def users_subscribed_on(shard: RedisServer) -> set[int]:
    """The users whose group channel this shard carries, as Redis itself reports it (PUBSUB CHANNELS)."""
    pattern = f"{LAYER_PREFIX}__group__user_"
    channels = redis.Redis.from_url(shard.url).pubsub_channels(f"{pattern}*")
    return {int(name.decode().removeprefix(pattern)) for name in channels}


def publishes_on(shard: RedisServer) -> int:
    return redis.Redis.from_url(shard.url).info("commandstats").get("cmdstat_publish", {}).get("calls", 0)


def first_delivery_after(client: ResilientClient, moment: float) -> float:
    return next(at for at in client.delivered_times if at > moment)


def delivery_time(client: ResilientClient, seq: int) -> float:
    return client.delivered_times[client.delivered.index(seq)]


def spread(seconds) -> dict:
    seconds = list(seconds)
    return {"median": round(statistics.median(seconds), 2), "max": round(max(seconds), 2)}


def staff_shard() -> int:
    """The shard of the staff's group, which every order change's publish also sends to (its fan-out)."""
    return _consistent_hash(f"{LAYER_PREFIX}__group__{STAFF_GROUP}", 2)  # as RedisPubSubLoopLayer._get_shard


@pytest.mark.parametrize("lose", ["the_other_shard", "the_staff_groups_shard"])
async def test_losing_one_layer_shard_interrupts_only_its_customers_and_loses_nothing(
    lose, sharded_cluster, redis_shards
):
    webs = [sharded_cluster.web(), sharded_cluster.web()]
    sharded_cluster.worker()
    sharded_cluster.beat()
    orders, sessions = await in_thread(shop_with_customers)
    start_seqs = await in_thread(seqs_by_user)
    clients = {
        pk: ResilientClient([webs[i % 2], webs[(i + 1) % 2]], sessions[pk], last_seq=start_seqs[pk][-1]).start()
        for i, pk in enumerate(sessions)
    }
    await wait_until(lambda: all(c.connects for c in clients.values()), deadline=30)

    # Given: each customer's group on exactly one shard, both shards carrying some, and live delivery through both.
    on_shard = [await in_thread(users_subscribed_on, shard) for shard in redis_shards]
    assert on_shard[0] | on_shard[1] == set(clients) and not on_shard[0] & on_shard[1]
    assert on_shard[0] and on_shard[1]
    first_orders = {order.customer_id: order for order in orders}.values()
    for order in first_orders:
        await in_thread(order_transition, order_id=order.pk, to_status=OrderStatus.PROCESSING)
    expected = await in_thread(seqs_by_user)
    await wait_until(
        lambda: all(c.delivered == expected[pk][len(start_seqs[pk]) :] for pk, c in clients.items()),
        deadline=DELIVERY_DEADLINE,
    )
    assert all(publishes_on(shard) > 0 for shard in redis_shards)

    # When: one shard crashes mid-stream, and comes back after OUTAGE.
    done_first = {(order.pk, OrderStatus.PROCESSING) for order in first_orders}
    steps = [OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
    plan = [(order.pk, status) for status in steps for order in orders if (order.pk, status) not in done_first]
    stream = ChangeStream(plan, interval=CHANGE_INTERVAL)
    stream.start()
    stream_started = time.monotonic()
    lost = staff_shard() if lose == "the_staff_groups_shard" else 1 - staff_shard()
    dead, surviving, affected = redis_shards[lost], on_shard[1 - lost], on_shard[lost]
    await asyncio.sleep(OUTAGE_AFTER)  # let the stream run on both shards first
    await in_thread(dead.kill)
    killed = time.monotonic()
    at_kill = await in_thread(seqs_by_user)
    await asyncio.sleep(OUTAGE)  # the outage itself
    # Then, while it is down: the customers on the other shard heard everything committed for them so far, live.
    during = {pk: seqs[len(start_seqs[pk]) :] for pk, seqs in (await in_thread(seqs_by_user)).items()}
    await wait_until(
        lambda: all(clients[pk].delivered[: len(during[pk])] == during[pk] for pk in surviving),
        deadline=DELIVERY_DEADLINE,
        describe=lambda: {pk: (clients[pk].delivered, during[pk]) for pk in surviving},
    )
    before_restart = await in_thread(seqs_by_user)
    left_to_the_sweeper = await in_thread(Notification.objects.filter(published_at=None).count)
    restarted = time.monotonic()  # from here: redis-server starts in milliseconds, and a client may beat the ping
    await in_thread(dead.start)
    await in_thread(stream.join, 120)
    stream_seconds = time.monotonic() - stream_started

    # And in the end everyone has everything, once and in order.
    expected = await in_thread(seqs_by_user)

    def missing():
        return clients_behind(clients, expected, start_seqs)

    await wait_until(lambda: not missing(), deadline=RECOVERY_DEADLINE, describe=missing)
    unpublished = Notification.objects.filter(published_at=None)
    swept = await wait_until_async(lambda: in_thread(lambda: not unpublished.exists()), deadline=RECOVERY_DEADLINE)
    for client in clients.values():
        await client.stop()

    reconnected = {pk for pk, c in clients.items() if c.connects > 1}
    missed_news = [pk for pk in affected if len(before_restart[pk]) > len(at_kill[pk])]  # committed while it was down
    caught_up = {pk: delivery_time(clients[pk], before_restart[pk][-1]) for pk in missed_news}
    heard_live = {pk: sum(killed < at < restarted for at in clients[pk].delivered_times) for pk in surviving}
    told = [
        c.close_times[c.close_codes.index(CLOSE_SERVICE_RESTART)] - killed
        for pk, c in clients.items()
        if pk in affected and CLOSE_SERVICE_RESTART in c.close_codes
    ]
    committed = sum(len(expected[pk]) - len(start_seqs[pk]) for pk in clients)
    figures = delivery_figures(clients.values(), committed=committed)
    record(
        f"layer_shard_lost_{lose}",
        clients=len(clients),
        web_processes=len(webs),
        customers_per_shard=[len(users) for users in on_shard],
        fraction_affected=round(len(affected) / len(clients), 2),
        changes_committed=stream.committed,
        stream_seconds=round(stream_seconds, 2),
        **figures,
        outage_seconds=round(restarted - killed, 2),
        seconds_until_affected_sockets_were_closed=spread(told),
        affected_with_news_while_down=len(missed_news),
        affected_seconds_without_delivery=spread(
            first_delivery_after(clients[pk], killed) - killed for pk in missed_news
        ),
        # A reconnect while it is down can be let in (and resume from the database): docs/operations.md.
        affected_caught_up_while_it_was_down=sum(caught_up[pk] < restarted for pk in missed_news),
        affected_closed_again_once_it_was_back=sum(
            any(
                code == CLOSE_SERVICE_RESTART and at > restarted
                for code, at in zip(c.close_codes, c.close_times, strict=True)
            )
            for pk, c in clients.items()
            if pk in affected
        ),
        seconds_from_shard_back_to_affected_caught_up=spread(max(0, caught_up[pk] - restarted) for pk in missed_news),
        rows_unpublished_when_the_shard_came_back=left_to_the_sweeper,
        seconds_until_the_sweeper_published_every_row=round(swept, 2),
        surviving_reconnects=sum(clients[pk].connects - 1 for pk in surviving),
        surviving_notifications_heard_live_during_outage=sum(heard_live.values()),
    )
    assert stream.errors == []  # a publish failure never failed a change
    assert committed == figures["notifications_delivered"] == len(first_orders) + stream.committed
    assert reconnected == affected  # only the dead shard's customers were interrupted
    assert sum(heard_live.values()) > 0  # the others heard live all along (all of it: checked while it was down)
    assert len(told) == len(affected)  # each of them told to reconnect (4012), not left deaf
    assert missed_news  # and some had news while it was down, which reached them after all (above)
    assert 4011 not in figures["close_codes"]
    for web in webs:
        web.process.check_running()
