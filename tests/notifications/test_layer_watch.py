"""The per-process layer watch: it stops whenever its event loop cancels it, and closes the sockets a shard serves."""

import asyncio
import os
import random

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from notifications import layer_watch
from notifications.groups import user_group
from orders.models import OrderStatus
from shop.channel_layers import channel_layers_config
from tests.conftest import requires_redis
from tests.faults.client import wait_until
from tests.notifications.test_consumer import closed_with, make_user, open_socket, place, transition

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_the_watch_stops_when_cancelled_even_in_the_middle_of_a_redis_command(settings):
    # Polling every 0.5 ms makes most cancellations land inside `INFO`, where redis-py used to turn
    # them into a connection error; the watch then looped forever and held up its loop's shutdown.
    settings.CHANNEL_LAYER_WATCH_INTERVAL = 0.0005
    rng = random.Random(1234)
    for _ in range(100):
        watch = asyncio.create_task(layer_watch._watch({"address": REDIS_URL}))
        await asyncio.sleep(rng.uniform(0.001, 0.02))
        watch.cancel()
        async with asyncio.timeout(2):
            await asyncio.wait({watch})
        assert watch.cancelled()


# --- A layer sharded over two Redis servers ---------------------------------------------

GROUPS = [user_group(number) for number in range(1, 33)]  # enough that both shards hold some


def sharded(settings, backend: str, redis_shards) -> None:
    settings.CHANNEL_LAYERS = channel_layers_config(
        REDIS_URL, backend, "private", shard_urls=[shard.url for shard in redis_shards]
    )


def shards_holding(group: str, backend: str, redis_shards) -> set[int]:
    """Where Redis itself says the layer put `group`: its subscription (pub/sub) or its members' set (core)."""
    clients = [redis.Redis.from_url(shard.url) for shard in redis_shards]
    if backend == "pubsub":
        return {index for index, client in enumerate(clients) if client.pubsub_numsub(f"private__group__{group}")[0][1]}
    return {index for index, client in enumerate(clients) if client.exists(f"private:group:{group}")}


def shard_blocked_in_a_receive(redis_shards) -> set[int]:
    """The shards with a client waiting in BZPOPMIN: the core layer's process inbox."""
    clients = [redis.Redis.from_url(shard.url) for shard in redis_shards]
    return {index for index, client in enumerate(clients) if any("b" in c["flags"] for c in client.client_list())}


@requires_redis()
@pytest.mark.parametrize("backend", ["pubsub", "core"])
async def test_a_sockets_shards_are_those_channels_redis_put_its_groups_and_its_process_inbox_on(
    backend, redis_shards, settings
):
    sharded(settings, backend, redis_shards)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for group in GROUPS:
        await layer.group_add(group, channel)
    receiving = asyncio.create_task(layer.receive(channel))
    inbox = set()
    if backend == "core":
        await wait_until(lambda: len(shard_blocked_in_a_receive(redis_shards)) == 1, deadline=5)
        inbox = shard_blocked_in_a_receive(redis_shards)

    placed = {group: shards_holding(group, backend, redis_shards) | inbox for group in GROUPS}

    assert {group: layer_watch.socket_shards(layer, channel_name=channel, groups=[group]) for group in GROUPS} == placed
    assert {shard for shards in placed.values() for shard in shards} == {0, 1}
    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)
    await layer.flush()


@requires_redis()
@pytest.mark.django_db(transaction=True)
async def test_losing_one_shard_closes_only_the_sockets_that_hear_through_it(redis_shards, settings):
    backend = settings.CHANNEL_LAYER_BACKEND
    sharded(settings, backend, redis_shards)
    settings.CHANNEL_LAYER_WATCH_INTERVAL = 0.1
    layer = get_channel_layer()
    process_channel = await layer.new_channel()
    # The core layer's sockets all hear through their process's inbox: lose the other shard.
    lost = 1 - layer.consistent_hash(process_channel) if backend == "core" else 1
    hearing, deaf_to_it = [], []  # (socket, order) of the customers whose group is on the lost shard, and not
    while not (hearing and deaf_to_it):
        assert len(hearing) + len(deaf_to_it) < 30, "the layer put every group on one shard"
        customer = await make_user()
        order = await place(customer=customer)
        communicator, _ = await open_socket(customer)
        shards = layer_watch.socket_shards(layer, channel_name=process_channel, groups=[user_group(customer.pk)])
        (hearing if lost in shards else deaf_to_it).append((communicator, order))

    await sync_to_async(redis_shards[lost].kill)()

    for communicator, _ in hearing:
        assert await closed_with(communicator, timeout=10) == layer_watch.CLOSE_SERVICE_RESTART
    for communicator, order in deaf_to_it:
        await transition(order_id=order.pk, to_status=OrderStatus.PAID)
        assert (await communicator.receive_json_from(timeout=5))["type"] == "notification"  # still live
        await communicator.disconnect()
