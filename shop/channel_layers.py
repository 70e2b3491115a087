"""The channel layer's configuration for the shop's Redis: imported by the settings, the tests and the benchmark.

A module of its own so that importing it runs none of the settings' production guards.
"""

from collections.abc import Sequence

import channels_redis
import channels_redis.core
import redis
from django.core.exceptions import ImproperlyConfigured
from redis.driver_info import DriverInfo

from shop.redis_config import Redis, redis_host

# What the layer's Redis connections call themselves (CLIENT SETINFO), worked out once: left to redis-py, every
# new connection reads the installed packages' metadata (docs/performance.md, "What the profiles showed").
REDIS_DRIVER_INFO = DriverInfo(lib_version=redis.__version__).add_upstream_driver(
    "channels-redis", channels_redis.__version__
)

BACKENDS = ("pubsub", "core")


class RedisChannelLayer(channels_redis.core.RedisChannelLayer):
    """channels_redis's core layer, whose send to one socket reaches the shard its process reads.

    Its `send` hashes a process-specific name whole ("specific.<process>!<socket>") while its `receive` hashes
    the process's part, so over several shards a send lands on the wrong one about half the time, silently
    (django/channels#1492). Every shard choice goes through `consistent_hash`: hashing the process's part there
    makes them agree; group names have no "!" and hash as before.
    """

    def consistent_hash(self, value):
        return super().consistent_hash(self.non_local_name(value))


def channel_layers_config(
    location: Redis, backend: str, prefix: str, *, group_expiry: int = 86400, shard_urls: Sequence[str] = ()
) -> dict:
    """CHANNEL_LAYERS for the shop's Redis at `location`, a URL or a RedisSentinel (empty: in-memory, embedded mode),
    or sharded over the Redis servers at `shard_urls` if any.

    `group_expiry` (core only) must outlive the longest a socket stays open, or it silently stops receiving.
    Shards: channels_redis places each group and each process's sockets on one of them by name
    (docs/operations.md, "Sharding the channel layer").
    """
    if not location:
        if shard_urls:
            raise ImproperlyConfigured("CHANNEL_LAYER_REDIS_URLS needs REDIS_URL: embedded mode has no Redis.")
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    if backend not in BACKENDS:
        raise ImproperlyConfigured('CHANNEL_LAYER_BACKEND must be "core" or "pubsub".')
    if shard_urls and not isinstance(location, str):
        # Each shard would need a primary of its own for the sentinels to watch: not supported.
        raise ImproperlyConfigured("CHANNEL_LAYER_REDIS_URLS shards over plain Redis URLs; not with REDIS_SENTINELS.")
    connection = {
        # No read timeout: the layer's blocking receive waits as long as a socket is idle (channels_redis#422).
        "socket_timeout": None,
        # But fail fast when Redis is down, so a publish never hangs a request.
        "socket_connect_timeout": 5,
        "driver_info": REDIS_DRIVER_INFO,
    }
    hosts = [{**redis_host(where), **connection} for where in shard_urls or [location]]
    if backend == "pubsub":
        # No queues in Redis: a message published while a socket resubscribes is lost, and ?after= recovers it.
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": hosts, "prefix": prefix},
            }
        }
    return {
        "default": {
            "BACKEND": "shop.channel_layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": hosts,
                "prefix": prefix,
                # One process's sockets share one key, which must hold its largest burst: past capacity
                # channels_redis drops messages silently (docs/performance.md, "What the profiles showed").
                "capacity": 100_000,
                "expiry": 60,
                "group_expiry": group_expiry,
            },
        }
    }
