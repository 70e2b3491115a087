"""The shop's Redis, a URL or a primary that Sentinel names, and every client's configuration for it.

The variables are parsed and refused by name; then each client built from a Sentinel configuration reaches the
primary through real sentinels (Debian's redis-sentinel): the channel layer (both backends), the asyncio clients
of the layer watch, the user limits and the health checks, the login limits' storage and the Celery broker.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool
from django.core.exceptions import ImproperlyConfigured
from kombu import Connection
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import SentinelConnectionPool

from shop.channel_layers import channel_layers_config
from shop.redis_config import RedisSentinel, celery_broker, limits_storage, redis_from_env, redis_host, redis_pool
from tests.conftest import requires_redis_sentinel
from tests.redis_server import SentinelGroup

ROOT = Path(__file__).resolve().parents[2]
UNSET = {"url": "", "sentinels": "", "master": "", "password": "", "sentinel_password": "", "db": ""}
SENTINEL = RedisSentinel(sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380)), master="shop")


def from_env(**variables: str):
    return redis_from_env(**{**UNSET, **variables})


# --- The variables -----------------------------------------------------------------------------


def test_without_any_variable_there_is_no_redis_embedded_mode():
    assert from_env() == ""


def test_redis_url_alone_is_the_shops_redis_as_before():
    assert from_env(url="redis://127.0.0.1:6379/3") == "redis://127.0.0.1:6379/3"


def test_sentinels_and_the_primarys_name_make_a_sentinel_configuration():
    redis = from_env(sentinels="10.0.0.1:26379, sentinel-b:26380,sentinel-c,[fd00::1]:26381", master="shop",
                     password="p@ss", sentinel_password="s3nt", db="2")  # fmt: skip

    assert redis == RedisSentinel(
        sentinels=(("10.0.0.1", 26379), ("sentinel-b", 26380), ("sentinel-c", 26379), ("fd00::1", 26381)),
        master="shop", password="p@ss", sentinel_password="s3nt", db=2,
    )  # fmt: skip


@pytest.mark.parametrize(
    "variables, refusal",
    [
        ({"url": "redis://r:6379/0", "sentinels": "s:26379", "master": "shop"}, "REDIS_URL or REDIS_SENTINELS"),
        ({"sentinels": "s:26379"}, "needs REDIS_SENTINEL_MASTER"),
        ({"sentinels": "s:port", "master": "shop"}, "REDIS_SENTINELS must be host:port"),
        ({"sentinels": "s:0", "master": "shop"}, "REDIS_SENTINELS must be host:port"),
        ({"sentinels": "s:65536", "master": "shop"}, "REDIS_SENTINELS must be host:port"),
        ({"sentinels": "s:26379,", "master": "shop"}, "REDIS_SENTINELS must be host:port"),
        ({"sentinels": "s:26379", "master": "shop", "db": "one"}, "REDIS_DB must be a database number"),
        ({"sentinels": "s:26379", "master": "shop", "db": "-1"}, "REDIS_DB must be a database number"),
        ({"url": "redis://r:6379/0", "master": "shop"}, "REDIS_SENTINEL_MASTER: for REDIS_SENTINELS only"),
        ({"password": "p", "db": "1"}, "REDIS_PASSWORD, REDIS_DB: for REDIS_SENTINELS only"),
    ],
)
def test_a_bad_or_contradictory_configuration_is_refused_naming_the_variable(variables, refusal):
    with pytest.raises(ImproperlyConfigured, match=refusal):
        from_env(**variables)


# --- Each client's configuration ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pubsub", "core"])
def test_the_layer_finds_its_primary_through_the_sentinels_with_no_read_timeout_on_its_connections(backend):
    [host] = channel_layers_config(SENTINEL, backend, "p")["default"]["CONFIG"]["hosts"]

    pool = create_pool(host)  # as both channels_redis layers build theirs

    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "shop"
    # The trap of channels_redis#422: a read timeout would kill the layer's blocking receive when a socket is idle.
    assert pool.connection_kwargs["socket_timeout"] is None
    assert pool.connection_kwargs["socket_connect_timeout"] == 5
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in sentinels] == list(SENTINEL.sentinels)  # fmt: skip
    # A sentinel answers at once or not at all: short waits there, then the next one is asked.
    assert all(s.connection_pool.connection_kwargs["socket_timeout"] == 2.0 for s in sentinels)


def test_a_url_is_still_the_layers_address():
    [host] = channel_layers_config("redis://127.0.0.1:6379/0", "pubsub", "p")["default"]["CONFIG"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/0" and "sentinels" not in host


def test_the_primarys_and_the_sentinels_passwords_go_to_their_own_connections():
    redis = RedisSentinel(sentinels=(("s", 26379),), master="shop", password="primary", sentinel_password="sent")

    pool = redis_pool(redis_host(redis))

    assert pool.connection_kwargs["password"] == "primary"
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["password"] == "sent"


def test_celery_gets_one_sentinel_url_per_sentinel_and_the_primarys_name_in_its_transport_options():
    redis = RedisSentinel(sentinels=SENTINEL.sentinels, master="shop", password="p@ss/word", db=3)

    url, options = celery_broker(redis)

    assert url == "sentinel://:p%40ss%2Fword@10.0.0.1:26379/3;sentinel://:p%40ss%2Fword@10.0.0.2:26380/3"
    assert options["master_name"] == "shop"
    assert options["sentinel_kwargs"]["socket_timeout"] == 2.0
    assert celery_broker("redis://r:6379/1") == ("redis://r:6379/1", {})
    assert celery_broker("") == ("memory://", {})


def test_the_login_limits_read_the_primary_only_never_a_lagging_replica():
    uri, options = limits_storage(SENTINEL)

    assert uri == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/shop"
    assert options["use_replicas"] is False and options["db"] == 0
    assert limits_storage("redis://r:6379/1") == ("redis://r:6379/1", {})
    assert limits_storage("") == ("memory://", {})


def settings_script(script: str, **variables: str) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter whose shop.settings see exactly `variables` (and DEBUG)."""
    environment = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "shop.settings", "DEBUG": "true", **variables}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_the_settings_send_every_redis_client_through_the_sentinels():
    script = (
        "import json; from django.conf import settings as s;"
        "print(json.dumps({'redis': str(s.REDIS), 'broker': s.CELERY_BROKER_URL,"
        " 'transport': s.CELERY_BROKER_TRANSPORT_OPTIONS, 'limits': s.LOGIN_LIMIT_STORAGE,"
        " 'limits_options': s.LOGIN_LIMIT_STORAGE_OPTIONS, 'eager': s.CELERY_TASK_ALWAYS_EAGER,"
        " 'layer': s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['master_name']}))"
    )
    result = settings_script(script, REDIS_SENTINELS="s1:26379,s2:26379", REDIS_SENTINEL_MASTER="shop")

    assert result.returncode == 0, result.stderr
    configured = json.loads(result.stdout)
    assert configured["broker"] == "sentinel://s1:26379/0;sentinel://s2:26379/0"
    assert configured["transport"]["master_name"] == "shop" and configured["transport"]["visibility_timeout"] == 300
    assert configured["limits"] == "redis+sentinel://s1:26379,s2:26379/shop"
    assert configured["limits_options"]["use_replicas"] is False
    assert configured["layer"] == "shop"
    assert configured["eager"] is False  # a deployment: real workers, as with REDIS_URL


def test_the_settings_refuse_to_start_with_both_a_url_and_sentinels():
    result = settings_script(
        "import django.conf as c; c.settings.REDIS",
        REDIS_URL="redis://r:6379/0", REDIS_SENTINELS="s:26379", REDIS_SENTINEL_MASTER="shop",
    )  # fmt: skip

    assert result.returncode != 0
    assert "Set REDIS_URL or REDIS_SENTINELS, not both" in result.stderr


# --- Against real sentinels --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"), sentinels=1)
    try:
        yield group.start()
    finally:
        group.stop()


@requires_redis_sentinel()
@pytest.mark.parametrize("layer_class", [RedisPubSubChannelLayer, RedisChannelLayer], ids=["pubsub", "core"])
async def test_each_layer_delivers_a_group_message_through_the_primary_the_sentinels_name(sentinels, layer_class):
    backend = "pubsub" if layer_class is RedisPubSubChannelLayer else "core"
    layer = layer_class(**channel_layers_config(sentinels.location, backend, "sentinel-test")["default"]["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("customers", channel)

    await layer.group_send("customers", {"type": "order.status_changed", "seq": 7})

    assert (await asyncio.wait_for(layer.receive(channel), 5))["seq"] == 7
    await layer.flush()


@requires_redis_sentinel()
async def test_the_asyncio_clients_of_the_watch_the_limits_and_the_health_checks_reach_the_primary(sentinels):
    client = AsyncRedis.from_pool(redis_pool(redis_host(sentinels.location), socket_timeout=2, retry=None))

    server = await client.info("server")

    assert server["tcp_port"] == sentinels.primary.port
    assert server["run_id"] == sentinels.primary.admin.info("server")["run_id"]  # what the layer watch compares
    await client.aclose()


@requires_redis_sentinel()
def test_the_login_limits_count_on_the_primary(sentinels):
    uri, options = limits_storage(sentinels.location)
    limiter = MovingWindowRateLimiter(storage_from_string(uri, key_prefix="sentinel-test-login", **options))

    assert limiter.hit(parse("2/hour"), "username", "alice")

    assert sentinels.primary.admin.keys("sentinel-test-login*")


@requires_redis_sentinel()
def test_the_celery_broker_queues_on_the_primary(sentinels):
    url, options = celery_broker(sentinels.location)

    with Connection(url, transport_options=options) as connection:
        connection.SimpleQueue("sentinel-test-queue").put({"task": "ping"})

    assert sentinels.primary.admin.llen("sentinel-test-queue") == 1
