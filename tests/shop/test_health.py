"""/healthz and /readyz (shop/health.py): answers, failures named without secrets, and reachable by address."""

from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from notifications.models import Notification
from shop.channel_layers import channel_layers_config
from tests.conftest import requires_redis
from tests.factories import UserFactory
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _unpublished(count: int, *, age: timedelta) -> None:
    user = UserFactory()
    created = timezone.now() - age
    Notification.objects.bulk_create(
        Notification(recipient=user, seq=seq, kind="order.status_changed", payload={}, created_at=created)
        for seq in range(1, count + 1)
    )


def test_healthz_answers_ok_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_are_answered_for_a_host_header_allowed_hosts_does_not_list(client, settings):
    """A load balancer probes by address: no 400 for its Host header, and no redirect to HTTPS."""
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    # Every other page still refuses that host.
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@requires_redis()
def test_readyz_checks_the_database_the_layer_the_broker_and_the_outbox(client, settings):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "outbox": "ok", "channel_layer": "ok", "celery_broker": "ok"},
    }


def test_readyz_in_embedded_mode_checks_only_what_exists(client, settings):
    settings.REDIS = ""
    settings.CHANNEL_LAYERS = channel_layers_config("", "pubsub", prefix="shop")

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "outbox": "ok"}


@requires_redis()
def test_readyz_is_503_naming_the_channel_layer_when_its_redis_is_stopped(client, settings, tmp_path):
    server = RedisServer(tmp_path).start()
    redis.Redis.from_url(server.url).config_set("requirepass", "s3cret-password")
    settings.CHANNEL_LAYERS = channel_layers_config(
        f"redis://:s3cret-password@127.0.0.1:{server.port}/0", "pubsub", prefix="private"
    )
    assert client.get("/readyz").status_code == 200

    server.stop()
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"].startswith("Unavailable: Unable to connect to Redis")
    assert "s3cret" not in response.content.decode()


@requires_redis()
def test_readyz_checks_each_shard_of_the_layer_and_names_the_one_that_is_down(client, settings, redis_shards):
    settings.CHANNEL_LAYERS = channel_layers_config(
        settings.REDIS_URL, "pubsub", prefix="private", shard_urls=[shard.url for shard in redis_shards]
    )
    healthy = client.get("/readyz")
    assert healthy.status_code == 200
    assert {name for name in healthy.json()["checks"] if "layer" in name} == {"channel_layer_0", "channel_layer_1"}

    redis_shards[1].kill()
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["channel_layer_1"]
    assert response.json()["checks"]["channel_layer_0"] == "ok"


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(client, settings, monkeypatch, scheme):
    """Whichever broker Celery is configured with, Redis or RabbitMQ, is the one /readyz asks."""
    port = free_port()  # nothing listens there
    url = f"redis://:s3cret-password@127.0.0.1:{port}/0" if scheme == "redis" else f"amqp://u:s3cret@127.0.0.1:{port}//"
    settings.REDIS = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = channel_layers_config("", "pubsub", prefix="shop")
    # How a deployment names its broker; Celery reads the variable ahead of its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["celery_broker"]
    assert response.json()["checks"]["celery_broker"].startswith("Unavailable: Unable to reach the Celery broker")
    assert "s3cret" not in response.content.decode()


def test_readyz_is_503_naming_the_outbox_when_its_backlog_is_over_the_threshold(client, settings):
    settings.READYZ_MAX_UNPUBLISHED = 2
    settings.REDIS = ""
    settings.CHANNEL_LAYERS = channel_layers_config("", "pubsub", prefix="shop")
    _unpublished(3, age=timedelta(seconds=settings.NOTIFICATION_REPUBLISH_AFTER + 30))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["outbox"]
    assert "3 notifications unpublished" in response.json()["checks"]["outbox"]


def test_readyz_does_not_count_notifications_the_sweeper_is_not_due_to_retry_yet(client, settings):
    settings.READYZ_MAX_UNPUBLISHED = 2
    settings.REDIS = ""
    settings.CHANNEL_LAYERS = channel_layers_config("", "pubsub", prefix="shop")
    _unpublished(3, age=timedelta(seconds=0))

    assert client.get("/readyz").status_code == 200
