"""Which path publishes an outbox row: a claim taken atomically before the send, and what a failed send leaves.

A change's after-commit hook, a bulk change's and the sweeper may all try to publish one row. Each claims the
rows it is given with one conditional UPDATE, sends only those it got, and marks them published after; a claim
is a lease, so a publisher that dies mid-send leaves its rows to the sweeper once the lease is over.
"""

import logging
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import connection
from django.utils import timezone

from notifications.models import Notification

logger = logging.getLogger(__name__)

# publish_error keeps the start of a reason; a message that long says all it can.
PUBLISH_ERROR_LENGTH = 500


def notifications_claim(*, notification_ids: list[int], until: datetime) -> dict[int, int]:
    """Claim the unpublished, unquarantined, unclaimed rows among `notification_ids` until `until`, in one statement.

    Returns the rows this call claimed, each with its failed attempts so far; a row another path holds or has
    published is not among them.
    """
    if not notification_ids:
        return {}
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql().format(ids=", ".join(["%s"] * len(notification_ids)), unflushed=_unflushed()),
            [adapt(until), *notification_ids, adapt(timezone.now())],
        )
        return dict(cursor.fetchall())


# A claim or a published mark alone need not wait for its WAL flush (one fsync each, the dearest part of a change's
# publish on a busy disk: docs/performance.md, "One producer's changes"). Lost in a PostgreSQL crash, the sweeper
# sends the row again, as after a mark that failed. A condition that is always true, so the statement's own
# transaction commits without waiting; in a caller's transaction it would apply to all of it, so it is left out there.
UNFLUSHED = " AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


def _unflushed() -> str:
    return "" if connection.in_atomic_block else UNFLUSHED


@cache
def _claim_sql() -> str:
    """The statement of `notifications_claim`, with `{ids}` standing for one placeholder per row (and `{unflushed}`)."""
    quote = connection.ops.quote_name
    meta = Notification._meta

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    claimed_until = column("publish_claimed_until")
    return (
        f"UPDATE {quote(meta.db_table)} SET {claimed_until} = %s"  # names are ours, quoted
        f" WHERE {column('id')} IN ({{ids}}) AND {column('published_at')} IS NULL"
        f" AND {column('quarantined_at')} IS NULL AND ({claimed_until} IS NULL OR {claimed_until} < %s){{unflushed}}"
        f" RETURNING {column('id')}, {column('publish_attempts')}"
    )


def notifications_mark_published(*, notification_ids: list[int]) -> None:
    """Mark sent rows published, their claims over, in one plain statement (it ends every change's publish)."""
    if not notification_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _mark_published_sql().format(ids=", ".join(["%s"] * len(notification_ids)), unflushed=_unflushed()),
            [connection.ops.adapt_datetimefield_value(timezone.now()), *notification_ids],
        )


@cache
def _mark_published_sql() -> str:
    quote = connection.ops.quote_name
    meta = Notification._meta

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"UPDATE {quote(meta.db_table)} SET {column('published_at')} = %s,"  # names are ours, quoted
        f" {column('publish_claimed_until')} = NULL WHERE {column('id')} IN ({{ids}}){{unflushed}}"
    )


def notifications_claim_release(*, notification_ids: list[int], until: datetime) -> None:
    """Give back claims that a send could not use (the layer was down), so the next sweep retries them at once."""
    Notification.objects.filter(pk__in=notification_ids, publish_claimed_until=until).update(publish_claimed_until=None)


def notification_publish_failure_record(*, notification: Notification, error: Exception, until: datetime) -> None:
    """Count a send that failed for this row alone; quarantine it after NOTIFICATION_PUBLISH_MAX_ATTEMPTS.

    Logged without a traceback: the reason is the row's, and it repeats on every attempt.
    """
    attempts = notification.publish_attempts + 1
    limit = settings.NOTIFICATION_PUBLISH_MAX_ATTEMPTS
    reason = f"{type(error).__name__}: {error}"[:PUBLISH_ERROR_LENGTH]
    quarantined = attempts >= limit
    Notification.objects.filter(pk=notification.pk, publish_claimed_until=until).update(
        publish_attempts=attempts,
        publish_error=reason,
        publish_claimed_until=None,
        quarantined_at=timezone.now() if quarantined else None,
    )
    row = f"Notification {notification.pk} (user {notification.recipient_id}, seq {notification.seq})"
    if quarantined:
        logger.warning("%s quarantined after %d failed publishes: %s", row, attempts, reason)
    else:
        logger.info(
            "%s could not be published (attempt %d of %d): %s; the sweeper will retry", row, attempts, limit, reason
        )
