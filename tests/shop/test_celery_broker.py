"""The Celery broker: the shop's Redis by default, RabbitMQ when CELERY_BROKER_URL names one, each as it needs."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from kombu import Connection

from shop.celery_broker import broker_is_rabbitmq, celery_broker_settings
from tests.conftest import IN_CI
from tests.rabbitmq_server import amqp_queue_delete
from tests.shop.test_settings import PRODUCTION, settings_in

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def test_without_a_broker_url_the_broker_is_the_shops_redis_with_its_visibility_timeout_and_sweep():
    configured = celery_broker_settings(url="", redis="redis://r:6379/2", visibility_timeout=300)
    assert configured == {
        "CELERY_BROKER_URL": "redis://r:6379/2",
        "CELERY_BROKER_TRANSPORT_OPTIONS": {
            "visibility_timeout": 300,
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
    }


def test_an_amqp_url_makes_rabbitmq_the_broker_with_quorum_queues_and_publisher_confirms_and_no_redis_options():
    configured = celery_broker_settings(url=RABBITMQ, redis="redis://r:6379/2", visibility_timeout=300)
    assert configured["CELERY_BROKER_URL"] == RABBITMQ
    assert configured["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"confirm_publish": True}
    assert configured["CELERY_TASK_DEFAULT_QUEUE_TYPE"] == "quorum"
    assert configured["CELERY_TASK_CREATE_MISSING_QUEUE_TYPE"] == "quorum"
    assert configured["CELERY_TASK_DEFAULT_EXCHANGE_TYPE"] == "topic"  # native delayed delivery needs one


@pytest.mark.parametrize("url", ["amqp://h//", "amqps://u:p@h:5671/shop", "pyamqp://h"])
def test_each_amqp_scheme_names_rabbitmq(url):
    assert broker_is_rabbitmq(url)


@pytest.mark.parametrize(
    ("url", "redis", "refusal"),
    [
        ("redis://r:6379/0", "redis://r:6379/0", "CELERY_BROKER_URL must be a RabbitMQ URL"),
        ("sqs://", "redis://r:6379/0", "CELERY_BROKER_URL must be a RabbitMQ URL"),
        (RABBITMQ, "", "CELERY_BROKER_URL needs REDIS_URL or REDIS_SENTINELS"),
    ],
)
def test_a_broker_url_that_is_not_rabbitmq_or_without_a_redis_for_the_layer_is_refused(url, redis, refusal):
    with pytest.raises(ImproperlyConfigured, match=refusal):
        celery_broker_settings(url=url, redis=redis, visibility_timeout=300)


def test_the_settings_put_celery_on_rabbitmq_and_keep_the_layer_and_limits_on_redis():
    result = settings_in({**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:6379/3", "CELERY_BROKER_URL": RABBITMQ})
    assert result.returncode == 0, result.stderr
    configured = json.loads(result.stdout)
    assert configured["broker"] == RABBITMQ and configured["eager"] is False
    assert configured["layer_hosts"] == ["redis://127.0.0.1:6379/3"]
    assert configured["login_limits"] == "redis://127.0.0.1:6379/3"


def test_the_settings_refuse_a_broker_url_that_is_not_rabbitmq_naming_the_variable():
    result = settings_in({**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:6379/3", "CELERY_BROKER_URL": "redis://x/1"})
    assert result.returncode != 0
    assert "CELERY_BROKER_URL must be a RabbitMQ URL" in result.stderr


def _rabbitmq_reachable() -> bool:
    try:
        with Connection(RABBITMQ, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception:  # refused, reset, wrong credentials: not there for this test
        return False
    return True


@pytest.mark.skipif(not IN_CI and not _rabbitmq_reachable(), reason="needs RabbitMQ at 127.0.0.1:5672 (guest/guest)")
def test_a_queue_named_by_the_sender_is_declared_a_durable_quorum_queue_behind_a_topic_exchange(monkeypatch):
    """What a sender declares a worker can declare again: RabbitMQ refuses a queue redeclared with other arguments."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery would read it ahead of this app's own broker
    from celery import Celery

    rabbitmq = Celery("broker-test", set_as_current=False)
    rabbitmq.config_from_object(
        {
            key.removeprefix("CELERY_").lower(): value
            for key, value in celery_broker_settings(url=RABBITMQ, redis="redis://r/0", visibility_timeout=300).items()
        }
    )
    queue = rabbitmq.amqp.queues[f"broker-test-{id(rabbitmq)}"]  # as a `queue=` or `-Q` names one it has not got
    with rabbitmq.connection_for_write() as connection:
        try:
            queue(connection.default_channel).declare()
            declared = queue.bind(connection.default_channel).queue_declare(passive=True)
            # Declared again with the same arguments, as a worker's -Q does: accepted.
            queue(connection.default_channel).declare()
        finally:
            amqp_queue_delete(RABBITMQ, queue.name)
    assert queue.queue_arguments == {"x-queue-type": "quorum"} and queue.durable
    assert (queue.exchange.name, queue.exchange.type) == (queue.name, "topic") and declared.message_count == 0
