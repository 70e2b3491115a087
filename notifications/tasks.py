"""Periodic upkeep of the notification outbox (scheduled in CELERY_BEAT_SCHEDULE)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from notifications.offline import offline_deliveries_run
from notifications.services import notifications_prune, notifications_publish_pending


@shared_task(acks_late=True)
def republish_notifications() -> int:
    """Publish notifications whose after-commit publish never happened (crash, Redis outage)."""
    return notifications_publish_pending()


@shared_task(acks_late=True)
def deliver_notifications() -> int:
    """Send the offline deliveries that are due (notifications/offline.py); beat runs it every few seconds.

    Runs may overlap (a redelivered task, the next beat's): each row is claimed by one of them.
    """
    return offline_deliveries_run().sent


@shared_task
def prune_notifications() -> int:
    """Drop notifications past the retention period; clients that far behind get a reset."""
    return notifications_prune(older_than=timedelta(days=settings.NOTIFICATION_RETENTION_DAYS))
