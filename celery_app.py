"""The Celery application, configured from Django settings (`CELERY_*`)."""

import os
import sys

from celery import Celery
from celery.signals import import_modules, setup_logging, worker_init, worker_process_init, worker_process_shutdown
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")


# Connected before the app exists, so it runs before Celery's Django fixup sets Django up on the same signal:
# prometheus-client reads PROMETHEUS_MULTIPROC_DIR when first imported (by the tasks' modules), too late after.
@import_modules.connect
def metrics_directory(**kwargs):
    """A worker's pool processes count into one directory that the worker serves (CELERY_METRICS_PORT)."""
    if "worker" in sys.argv[1:]:  # this signal fires for beat too; only a worker serves its pool's metrics
        from shop.monitoring import worker_metrics_directory_prepare

        worker_metrics_directory_prepare()


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


@worker_init.connect
def metrics_serve(**kwargs):
    """The worker's main process serves what its pool processes counted."""
    from shop.monitoring import worker_metrics_serve

    worker_metrics_serve()


@worker_process_shutdown.connect
def metrics_process_end(pid=None, **kwargs):
    """A pool process's live gauges leave the totals with it."""
    from shop.monitoring import worker_process_metrics_end

    worker_process_metrics_end(pid or os.getpid())
