"""The support app's periodic task (scheduled in CELERY_BEAT_SCHEDULE; the web process runs it in embedded mode)."""

import structlog
from celery import shared_task

from support.notifications import reply_notifications_run

logger = structlog.get_logger(__name__)


@shared_task(acks_late=True)
def notify_support_replies() -> int:
    """Turn staff replies the customer left unread into notifications (support/notifications.py); runs may overlap."""
    notified = reply_notifications_run()
    if notified:
        logger.info("support_replies_notified", count=notified)
    return notified
