"""Which broker Celery uses, and the settings that follow from it: the one place that knows.

The shop's Redis by default (`REDIS_URL` or `REDIS_SENTINELS`, shop/redis_config.py), or RabbitMQ when
`CELERY_BROKER_URL` names one (amqp://). What only one of them understands is set for that one only: Redis's
visibility timeout and its sweep for expired unacked messages; RabbitMQ's quorum queues and publisher confirms.
Why each, and what was measured on both: docs/reliability.md, "Which broker".

A module of its own, like shop/redis_config.py, so the tests and the settings can import it without the settings'
production guards.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from shop.redis_config import Redis, celery_broker

RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp")


def broker_is_rabbitmq(url: str) -> bool:
    """Whether a broker URL names RabbitMQ (amqp://, amqps://, pyamqp://)."""
    return urlsplit(url).scheme in RABBITMQ_SCHEMES


def celery_broker_settings(*, url: str, redis: Redis, visibility_timeout: int) -> dict[str, object]:
    """The CELERY_* settings that depend on the broker: RabbitMQ at `url` if given, else the shop's Redis."""
    if not url:
        return _redis_broker_settings(redis, visibility_timeout=visibility_timeout)
    if not broker_is_rabbitmq(url):
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL must be a RabbitMQ URL (amqp://user:password@host:5672/vhost); "
            "unset, the broker is the shop's Redis."
        )
    if not redis:
        # Embedded mode runs tasks in-process, and a worker elsewhere could reach no socket through its memory layer.
        raise ImproperlyConfigured("CELERY_BROKER_URL needs REDIS_URL or REDIS_SENTINELS for the channel layer.")
    return {
        "CELERY_BROKER_URL": url,
        # Every publish waits for RabbitMQ's ack, so a message it refused or lost before storing raises at the caller.
        "CELERY_BROKER_TRANSPORT_OPTIONS": {"confirm_publish": True},
        # Quorum queues: durable, their messages persistent, redelivered as soon as the consumer's connection drops
        # (Celery then consumes with per-consumer prefetch, as quorum queues have no global QoS).
        "CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorum",
        # Countdowns then wait in RabbitMQ's delay queues (Celery's native delayed delivery), not unacked in a
        # worker's memory; that needs a topic exchange in front of the queue, not the default direct one.
        "CELERY_TASK_DEFAULT_EXCHANGE_TYPE": "topic",
        # A queue named only when a task is sent to it (-Q, `queue=`) is declared the same way, whoever declares it
        # first: RabbitMQ refuses a second declaration of a queue with other arguments.
        "CELERY_TASK_CREATE_MISSING_QUEUE_TYPE": "quorum",
        "CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE": "topic",
    }


def _redis_broker_settings(redis: Redis, *, visibility_timeout: int) -> dict[str, object]:
    url, options = celery_broker(redis)
    return {
        "CELERY_BROKER_URL": url,
        "CELERY_BROKER_TRANSPORT_OPTIONS": {
            # A killed worker's late-acked task comes back after this (docs/reliability.md, note on 4).
            "visibility_timeout": visibility_timeout,
            # kombu's sweep for expired messages reads Redis only every 10th run by default, so redelivery lagged the
            # timeout by up to 100 s (docs/reliability.md, note on 4): read on every run instead.
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
            **options,  # with Sentinel: the primary's name and how to reach the sentinels
        },
    }
