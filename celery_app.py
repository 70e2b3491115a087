"""The Celery application, configured from Django settings (`CELERY_*`)."""

import os

from celery import Celery
from celery.signals import celeryd_init, worker_init, worker_process_init, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect  # before the pool forks
@worker_process_init.connect  # in each pool process, however it was started
def publish_from_a_long_lived_loop(**kwargs):
    """Each pool process of a worker sends over one event loop and Redis connection, not one per change."""
    from notifications.publishing_loop import publishing_loop_enable

    publishing_loop_enable()


@celeryd_init.connect  # the worker's first signal: before its tasks (and prometheus-client) are imported
def metrics_directory(**kwargs):
    """The worker's pool processes count into one directory that the worker serves (CELERY_METRICS_PORT)."""
    from shop.monitoring import worker_metrics_directory_prepare

    worker_metrics_directory_prepare()


@worker_init.connect
def metrics_serve(**kwargs):
    from shop.monitoring import worker_metrics_serve

    worker_metrics_serve()


@worker_process_shutdown.connect
def metrics_process_end(pid=None, **kwargs):
    from shop.monitoring import worker_process_metrics_end

    worker_process_metrics_end(pid or os.getpid())
