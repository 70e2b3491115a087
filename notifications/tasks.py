"""Periodic upkeep of the notification outbox (scheduled in CELERY_BEAT_SCHEDULE).

Each logs a line only when it did something: beat runs them every few seconds, mostly with nothing to do.
"""

from datetime import timedelta

import structlog
from celery import shared_task
from django.conf import settings

from notifications.offline import offline_deliveries_run
from notifications.services import notifications_prune, notifications_publish_pending

logger = structlog.get_logger(__name__)


@shared_task(acks_late=True)
def republish_notifications() -> int:
    """Publish notifications whose after-commit publish never happened (crash, Redis outage)."""
    published = notifications_publish_pending()
    if published:
        logger.info("notifications_republished", count=published)
    return published


@shared_task(acks_late=True)
def deliver_notifications() -> int:
    """Send the offline deliveries that are due (notifications/offline.py); beat runs it every few seconds.

    Runs may overlap (a redelivered task, the next beat's): each row is claimed by one of them.
    """
    run = offline_deliveries_run()
    if run.sent or run.skipped or run.failed:
        logger.info("offline_deliveries_sent", sent=run.sent, skipped=run.skipped, failed=run.failed)
    return run.sent


@shared_task
def prune_notifications() -> int:
    """Drop notifications past the retention period; clients that far behind get a reset."""
    pruned = notifications_prune(older_than=timedelta(days=settings.NOTIFICATION_RETENTION_DAYS))
    if pruned:
        logger.info("notifications_pruned", count=pruned)
    return pruned
