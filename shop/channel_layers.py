"""The channel layer's configuration for the shop's Redis: imported by the settings, the tests and the benchmark.

A module of its own so that importing it runs none of the settings' production guards.
"""

import channels_redis
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


def channel_layers_config(location: Redis, backend: str, prefix: str, *, group_expiry: int = 86400) -> dict:
    """CHANNEL_LAYERS for the shop's Redis at `location`, a URL or a RedisSentinel (empty: in-memory, embedded mode).

    `group_expiry` (core only) must outlive the longest a socket stays open, or it silently stops receiving.
    """
    if not location:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    if backend not in BACKENDS:
        raise ImproperlyConfigured('CHANNEL_LAYER_BACKEND must be "core" or "pubsub".')
    host = {
        **redis_host(location),
        # No read timeout: the layer's blocking receive waits as long as a socket is idle (channels_redis#422).
        "socket_timeout": None,
        # But fail fast when Redis is down, so a publish never hangs a request.
        "socket_connect_timeout": 5,
        "driver_info": REDIS_DRIVER_INFO,
    }
    if backend == "pubsub":
        # No queues in Redis: a message published while a socket resubscribes is lost, and ?after= recovers it.
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [host], "prefix": prefix},
            }
        }
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [host],
                "prefix": prefix,
                # One process's sockets share one key, which must hold its largest burst: past capacity
                # channels_redis drops messages silently (docs/performance.md, "What the profiles showed").
                "capacity": 100_000,
                "expiry": 60,
                "group_expiry": group_expiry,
            },
        }
    }
