"""Queueing a Celery task once the change that asks for it has committed.

A task is queued after commit, so a rolled-back change never starts one. If the broker is down at that moment
(Redis or RabbitMQ restarting: Celery retries the publish for about half a second, then raises), the change
stands: the failure is logged as `task_not_queued`, naming the task and its arguments, and is never an error of
the change (a 500 for a checkout that was made, a failed task whose order then stays where it was). What is not
queued is not sent again (docs/reliability.md, "Which broker").
"""

import math

import structlog
from amqp.exceptions import AMQPError
from django.db import transaction
from kombu.exceptions import KombuError

from shop.celery_broker import broker_is_rabbitmq

logger = structlog.get_logger(__name__)


def task_send_on_commit(task, *, args: tuple = (), kwargs: dict | None = None, countdown: float | None = None) -> None:
    """Queue `task` after the current transaction commits (at once outside one); a refused publish is logged."""
    seconds = countdown
    if countdown is not None and broker_is_rabbitmq(task.app.conf.broker_url):
        # RabbitMQ's delay queues (Celery's native delayed delivery) refuse a countdown under one second and cut others
        # down to whole seconds (docs/reliability.md, "Which broker").
        seconds = math.ceil(countdown)

    def send():
        try:
            task.apply_async(args, kwargs, countdown=seconds)
        except (KombuError, AMQPError, OSError) as error:
            logger.error("task_not_queued", task=task.name, args=args, kwargs=kwargs, error=type(error).__name__)

    transaction.on_commit(send)
