"""The Celery application, configured from Django settings (`CELERY_*`)."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

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
