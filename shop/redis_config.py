"""Where the shop's Redis is, and each Redis client's configuration for it: the one place that knows.

The shop's Redis is one of: nothing (embedded mode), a URL (`REDIS_URL`), or a primary that Redis Sentinel
names (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`, ...). Every client of it is configured here from that value:
the channel layer's host (shop/channel_layers.py adds its connection options), the asyncio clients of the
layer watch, the per-user limits and the health checks, the Celery broker and the login limits' storage. So a
failover moves all of them to the promoted replica, and none is left on the old primary.

A module of its own, like shop/channel_layers.py, so the tests and the settings can import it without the
settings' production guards.
"""

from dataclasses import dataclass
from urllib.parse import quote

from channels_redis.utils import create_pool
from django.core.exceptions import ImproperlyConfigured

SENTINEL_DEFAULT_PORT = 26379
# Sentinels answer a question at once or not at all: a short wait, then the next sentinel is asked.
SENTINEL_TIMEOUT = 2.0


@dataclass(frozen=True)
class RedisSentinel:
    """A primary (and its replicas) that the sentinels at `sentinels` know as `master`."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    password: str = ""  # the primary's and replicas' (requirepass)
    sentinel_password: str = ""  # the sentinels' own, if they ask for one
    db: int = 0


Redis = str | RedisSentinel  # "" in embedded mode, a URL, or a RedisSentinel


def redis_from_env(*, url: str, sentinels: str, master: str, password: str, sentinel_password: str, db: str) -> Redis:
    """The shop's Redis from its variables: REDIS_URL, or REDIS_SENTINELS with REDIS_SENTINEL_MASTER (not both)."""
    sentinel_only = {"REDIS_SENTINEL_MASTER": master, "REDIS_PASSWORD": password,
                     "REDIS_SENTINEL_PASSWORD": sentinel_password, "REDIS_DB": db}  # fmt: skip
    if not sentinels:
        stray = [name for name, value in sentinel_only.items() if value]
        if stray:
            raise ImproperlyConfigured(f"{', '.join(stray)}: for REDIS_SENTINELS only, which is not set.")
        return url
    if url:
        raise ImproperlyConfigured("Set REDIS_URL or REDIS_SENTINELS, not both: the sentinels name the primary.")
    if not master:
        raise ImproperlyConfigured("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the sentinels monitor.")
    try:
        number = int(db or 0)
    except ValueError:
        raise ImproperlyConfigured(f"REDIS_DB must be a database number, not {db!r}.") from None
    if number < 0:
        raise ImproperlyConfigured(f"REDIS_DB must be a database number, not {db!r}.")
    return RedisSentinel(
        sentinels=sentinel_addresses_parse(sentinels),
        master=master,
        password=password,
        sentinel_password=sentinel_password,
        db=number,
    )


def sentinel_addresses_parse(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (port 26379 if left out; IPv6 in brackets) as (host, port) pairs."""
    addresses = []
    for entry in (part.strip() for part in value.split(",")):
        host, colon, port = entry.rpartition(":") if not entry.endswith("]") else (entry, "", "")
        if not colon:
            host, port = entry, str(SENTINEL_DEFAULT_PORT)
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"REDIS_SENTINELS must be host:port entries separated by commas, not {value!r}.")
        addresses.append((host, int(port)))
    return tuple(addresses)


def redis_host(redis: Redis) -> dict:
    """Where to connect, as a channels_redis host dict: `address`, or the sentinels, the primary's name and auth."""
    if isinstance(redis, str):
        return {"address": redis}
    sentinel_kwargs = {"socket_connect_timeout": SENTINEL_TIMEOUT, "socket_timeout": SENTINEL_TIMEOUT}
    if redis.sentinel_password:
        sentinel_kwargs["password"] = redis.sentinel_password
    return {
        "sentinels": list(redis.sentinels),
        "master_name": redis.master,
        "sentinel_kwargs": sentinel_kwargs,
        "db": redis.db,
        **({"password": redis.password} if redis.password else {}),
    }


def redis_pool(host: dict, **connection):
    """A redis.asyncio pool for a host dict from `redis_host`, built as the channel layer builds its own.

    `connection` (timeouts, retry) overrides the host's options. With Sentinel, each new connection asks the
    sentinels for the primary, and one still open to a demoted primary is dropped on its first refused write.
    """
    return create_pool({**host, **connection})


def celery_broker(redis: Redis) -> tuple[str, dict]:
    """CELERY_BROKER_URL and what it adds to the broker's transport options ("memory://" in embedded mode)."""
    if not redis:
        return "memory://", {}
    if isinstance(redis, str):
        return redis, {}
    auth = f":{quote(redis.password, safe='')}@" if redis.password else ""
    url = ";".join(f"sentinel://{auth}{_netloc(host, port)}/{redis.db}" for host, port in redis.sentinels)
    return url, {"master_name": redis.master, "sentinel_kwargs": redis_host(redis)["sentinel_kwargs"]}


def limits_storage(redis: Redis) -> tuple[str, dict]:
    """The `limits` library's storage URI for the login limits, and its options beyond the URI."""
    if not redis:
        return "memory://", {}
    if isinstance(redis, str):
        return redis, {}
    locations = ",".join(_netloc(host, port) for host, port in redis.sentinels)
    options = {
        "sentinel_kwargs": redis_host(redis)["sentinel_kwargs"],
        "db": redis.db,
        # Counts are read right after they are written: a replica, behind by its replication lag, would miss some.
        "use_replicas": False,
        **({"password": redis.password} if redis.password else {}),
    }
    return f"redis+sentinel://{locations}/{quote(redis.master, safe='')}", options


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
