"""The channel layer's configuration (shop/channel_layers.py): one Redis, or shards, for either backend."""

import asyncio

import channels_redis.core
import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from shop.channel_layers import RedisChannelLayer, channel_layers_config
from tests.conftest import requires_redis

REDIS_URL = "redis://127.0.0.1:6379/0"
SHARDS = ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"]
SOCKETS = 20  # sends to as many sockets of one process: each would find the wrong shard with odds of one in two


def hosts(config: dict) -> list[dict]:
    return config["default"]["CONFIG"]["hosts"]


@pytest.mark.parametrize("backend", ["pubsub", "core"])
def test_the_layer_is_sharded_over_every_url_given_each_connecting_as_one_redis_would(backend):
    one = hosts(channel_layers_config(REDIS_URL, backend, "p"))[0]

    sharded = hosts(channel_layers_config(REDIS_URL, backend, "p", shard_urls=SHARDS))

    assert [host["address"] for host in sharded] == SHARDS
    assert all({**host, "address": REDIS_URL} == one for host in sharded)


@pytest.mark.parametrize("backend", ["pubsub", "core"])
def test_without_shards_the_layer_is_on_redis_url_alone(backend):
    assert [host["address"] for host in hosts(channel_layers_config(REDIS_URL, backend, "p"))] == [REDIS_URL]


def test_shards_without_redis_url_are_refused_as_embedded_mode_has_no_redis():
    with pytest.raises(ImproperlyConfigured, match="CHANNEL_LAYER_REDIS_URLS needs REDIS_URL"):
        channel_layers_config("", "pubsub", "p", shard_urls=SHARDS)


def test_the_core_backend_is_the_shops_layer_that_sends_to_the_shard_its_process_reads():
    assert (
        channel_layers_config(REDIS_URL, "core", "p")["default"]["BACKEND"] == "shop.channel_layers.RedisChannelLayer"
    )


def core_layer(layer_class, redis_shards) -> channels_redis.core.RedisChannelLayer:
    config = channel_layers_config(REDIS_URL, "core", "p", shard_urls=[shard.url for shard in redis_shards])
    return layer_class(**config["default"]["CONFIG"])


@requires_redis()
async def test_over_two_shards_the_core_layer_delivers_every_send_to_one_socket(redis_shards):
    layer = core_layer(RedisChannelLayer, redis_shards)
    channels = [await layer.new_channel() for _ in range(SOCKETS)]

    for number, channel in enumerate(channels):
        await layer.send(channel, {"type": "socket.replaced", "number": number})

    async with asyncio.timeout(10):
        received = [(await layer.receive(channel))["number"] for channel in channels]
    assert received == list(range(SOCKETS))
    await layer.flush()


@requires_redis()
async def test_channels_redis_alone_puts_some_of_those_sends_on_the_shard_no_one_reads(redis_shards):
    """django/channels#1492, the reason for shop.channel_layers.RedisChannelLayer: when this fails, drop it."""
    layer = core_layer(channels_redis.core.RedisChannelLayer, redis_shards)
    channels = [await layer.new_channel() for _ in range(SOCKETS)]
    inbox = f"p{layer.non_local_name(channels[0])}"  # the key this process receives from, on one shard only

    for channel in channels:
        await layer.send(channel, {"type": "socket.replaced"})

    queued = [redis.Redis.from_url(shard.url).zcard(inbox) for shard in redis_shards]
    read_from = layer.consistent_hash(layer.non_local_name(channels[0]))
    assert sum(queued) == SOCKETS
    assert 0 < queued[1 - read_from]  # sent where this process never looks: lost once they expire
    await layer.flush()
