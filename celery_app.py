"""The Celery application, configured from Django settings (`CELERY_*`)."""

import os

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each task's lines carry its id and name (shop/logs.py), and the request id of whoever queued it.
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect
def log_as_the_settings_say(**kwargs):
    """Worker and beat log through LOGGING (LOG_FORMAT, LOG_LEVEL), not Celery's own format and --loglevel."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect  # before the pool forks
@worker_process_init.connect  # in each pool process, however it was started
def publish_from_a_long_lived_loop(**kwargs):
    """Each pool process of a worker sends over one event loop and Redis connection, not one per change."""
    from notifications.publishing_loop import publishing_loop_enable

    publishing_loop_enable()
