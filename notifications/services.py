"""Recording and publishing notifications: the outbox, publish after commit, and the sweeper.

A notification row is written in the transaction that makes the change (so it exists
if and only if the change committed) and pushed to the recipient's group only after
that commit. A failed push leaves the row unpublished for `notifications_publish_pending`
to retry; the client's `?after=<seq>` resume covers any socket that was down meanwhile.
"""

import asyncio
import contextvars
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from notifications.frames import notification_frame, order_changed_frame, order_status_payload, unread_frame
from notifications.groups import STAFF_GROUP, user_group
from notifications.models import Notification, NotificationCounter, NotificationKind
from notifications.publishing_loop import run_until_sent
from notifications.selectors import NO_UNREAD, UnreadState, unread_count, unread_states
from orders.models import Order

logger = logging.getLogger(__name__)

# Ids recorded inside `notifications_batched()`, published together after commit.
_batch: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("notification_batch", default=None)

# How many group_send calls run concurrently inside one publish.
SEND_CONCURRENCY = 100
# What a bulk send may take per message before it is abandoned, on top of NOTIFICATION_PUBLISH_TIMEOUT:
# 20,000 messages (10,000 changes) took 3-6 s, 0.15-0.3 ms each.
SEND_SECONDS_PER_MESSAGE = 0.002


def notification_seq_next(*, recipient_id: int) -> int:
    """Take the recipient's next sequence number, inside the caller's transaction.

    One upsert: the counter row stays locked until commit, so concurrent
    transactions for one user queue here, and a rollback returns the number.
    A new notification changes the unread count, so its version moves on too.
    """
    table = NotificationCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, last_seq, unread_version) VALUES (%s, 1, 1) "  # noqa: S608 - ours
            f"ON CONFLICT (user_id) DO UPDATE SET last_seq = {table}.last_seq + 1, "
            f"unread_version = {table}.unread_version + 1 RETURNING last_seq",
            [recipient_id],
        )
        return cursor.fetchone()[0]


def notification_record(*, recipient_id: int, kind: str, payload: dict, actor=None) -> Notification:
    """Write a notification in the current transaction and publish it once that commits."""
    if not transaction.get_connection().in_atomic_block:
        # The seq lock and the outbox guarantee both need the caller's transaction.
        raise RuntimeError("notification_record must run inside the transaction that makes the change")
    notification = Notification.objects.create(
        recipient_id=recipient_id,
        seq=notification_seq_next(recipient_id=recipient_id),
        kind=kind,
        payload=payload,
        actor=actor,
    )
    batch = _batch.get()
    if batch is not None:
        batch.append(notification.pk)
    else:
        # The row goes to the hook as it is: after COMMIT only the unread count is read (0.25 ms), not
        # the row too (reading both back through the ORM was ~2 ms of every change's commit-to-client
        # latency; docs/performance.md).
        _on_commit_robust(notifications_send, notifications=[notification])
    return notification


def notification_record_order_status_change(
    *, order: Order, previous_status: str | None, actor=None, customer_message: str = ""
) -> Notification:
    """Tell the order's customer (and, live, the staff) that its status changed, with staff's message to them."""
    return notification_record(
        recipient_id=order.customer_id,
        kind=NotificationKind.ORDER_STATUS_CHANGED,
        payload=order_status_payload(order, previous_status=previous_status, customer_message=customer_message),
        actor=actor,
    )


@contextmanager
def notifications_batched() -> Iterator[None]:
    """Publish every notification recorded inside this block together, in one call, after commit.

    For bulk changes (admin actions, tasks touching thousands of orders): one read, one
    count and one send of them all, instead of one of each per row.
    Nested blocks join the outermost one.
    """
    if _batch.get() is not None:
        yield
        return
    ids: list[int] = []
    token = _batch.set(ids)
    try:
        yield
    finally:
        _batch.reset(token)
        if ids:
            # Rows rolled back by a savepoint are simply not found when publishing.
            _on_commit_robust(notifications_publish, notification_ids=ids)


def notifications_publish(*, notification_ids: list[int]) -> int:
    """Publish the given notifications that are still unpublished (a bulk change's, the sweeper's); never raises.

    Returns how many were published. On failure (Redis or PostgreSQL down) the rows stay
    unpublished and the sweeper retries them; the order change is never affected.
    """
    try:
        notifications = list(
            Notification.objects.filter(pk__in=notification_ids, published_at=None)
            .select_related("actor")
            .order_by("recipient_id", "seq")
        )
    except DatabaseError:
        # The change committed, then the database went away: raising here would fail the request
        # or task that made the change (tests/faults/test_postgres_restart.py).
        logger.exception("Reading %d notification(s) to publish failed; the sweeper will retry", len(notification_ids))
        return 0
    return notifications_send(notifications=notifications)


def notifications_send(*, notifications: list[Notification]) -> int:
    """Push committed notifications to their groups, then mark them published; never raises.

    Each frame carries its recipient's unread count as of the send. Returns how many were
    published: all of them, or 0 when the rows were left for the sweeper.
    """
    if not notifications:
        return 0
    try:
        unread = unread_states(recipient_ids={notification.recipient_id for notification in notifications})
    except DatabaseError:
        logger.exception("Counting unread for %d notification(s) failed; the sweeper will retry", len(notifications))
        return 0
    messages = []
    for notification in notifications:
        messages += _notification_messages(notification, unread=unread.get(notification.recipient_id, NO_UNREAD))
    try:
        _send_all(messages)
    except Exception:
        logger.exception("Publishing %d notification(s) failed; the sweeper will retry", len(notifications))
        return 0
    try:
        Notification.objects.filter(pk__in=[n.pk for n in notifications]).update(published_at=timezone.now())
    except DatabaseError:
        # Sent but not marked: the sweeper sends them again once the database is back, and each
        # socket drops a seq it has already delivered.
        logger.exception("Marking %d notification(s) published failed; the sweeper will resend", len(notifications))
    return len(notifications)


def _notification_messages(notification: Notification, *, unread: UnreadState) -> list[tuple[str, dict]]:
    """The (group, message) pairs that announce `notification`: to its recipient, and order news to staff."""
    frame = notification_frame(notification, unread=unread)
    messages = [(user_group(notification.recipient_id), {"type": "notification.created", "frame": frame})]
    if notification.kind == NotificationKind.ORDER_STATUS_CHANGED:
        actor = notification.actor
        staff_frame = order_changed_frame(notification, actor_name=actor.get_username() if actor else None)
        messages.append((STAFF_GROUP, {"type": "order.changed", "frame": staff_frame}))
    return messages


def _on_commit_robust(func, /, *args, **kwargs) -> None:
    """`transaction.on_commit(..., robust=True)` for a call with arguments.

    Not with functools.partial: Django 5.2 logs a failing robust hook by its `__qualname__`, which a
    partial lacks, so the logging itself raised AttributeError out of the committed transaction's
    atomic block: a 500 or a failed task after a successful change, and the hooks after it skipped.
    """

    def hook():
        func(*args, **kwargs)

    hook.__qualname__ = func.__qualname__
    transaction.on_commit(hook, robust=True)


def _send_all(messages: list[tuple[str, dict]]) -> None:
    """Send (group, message) pairs from sync code, given time in proportion to how many there are."""
    timeout = settings.NOTIFICATION_PUBLISH_TIMEOUT + len(messages) * SEND_SECONDS_PER_MESSAGE
    run_until_sent(group_send_all, messages, timeout=timeout)


async def group_send_all(messages: list[tuple[str, dict]]) -> None:
    """Send (group, message) pairs over one event loop, a bounded number at a time."""
    layer = get_channel_layer()
    for start in range(0, len(messages), SEND_CONCURRENCY):
        chunk = messages[start : start + SEND_CONCURRENCY]
        await asyncio.gather(*(layer.group_send(group, message) for group, message in chunk))


def notifications_publish_pending(*, older_than: timedelta | None = None, chunk_size: int = 1000) -> int:
    """Publish notifications left unpublished for longer than `older_than` (the sweeper).

    Covers a process killed between commit and publish, and Redis outages.
    """
    older_than = older_than if older_than is not None else timedelta(seconds=settings.NOTIFICATION_REPUBLISH_AFTER)
    cutoff = timezone.now() - older_than
    published = 0
    while True:
        ids = list(
            Notification.objects.filter(published_at=None, created_at__lte=cutoff)
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return published
        sent = notifications_publish(notification_ids=ids)
        if sent == 0:
            return published  # the layer is down; try again on the next beat
        published += sent


def notifications_mark_read(*, user_id: int, seq: int | None = None) -> UnreadState | None:
    """Mark one notification (by seq) or all of a user's notifications read; tell all their sockets.

    Returns the new unread count and its version, or None when nothing was unread: then
    nothing changed and nothing is sent (a repeated "mark all read" costs one indexed read).
    """
    unread = Notification.objects.filter(recipient_id=user_id, read_at=None)
    if seq is not None:
        unread = unread.filter(seq=seq)
    with transaction.atomic():
        if not unread.exists():
            return None
        # The version first: its lock waits for the user's notifications still committing, so the
        # UPDATE below sees all of them, and the count read after it belongs to this version.
        version = unread_version_next(user_id=user_id)
        if version is None or not unread.update(read_at=timezone.now()):
            transaction.set_rollback(True)  # marked meanwhile by another tab: nothing changed
            return None
        state = UnreadState(count=unread_count(user_id=user_id), version=version)
    frame = unread_frame(unread=state, read_seqs=None if seq is None else [seq])
    _on_commit_robust(_group_send_quietly, user_group(user_id), {"type": "unread.changed", "frame": frame})
    return state


def unread_version_next(*, user_id: int) -> int | None:
    """Move the user's unread version on, inside the caller's transaction (the row stays locked until commit)."""
    table = NotificationCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET unread_version = unread_version + 1 "  # noqa: S608 - table name is ours
            "WHERE user_id = %s RETURNING unread_version",
            [user_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def user_sockets_close(*, user_id: int, session_key: str | None = None, except_session_key: str | None = None) -> None:
    """Close a user's open sockets on every server process, after commit: all, only one session's, or all but one's."""
    message = {"type": "session.ended"}
    if session_key is not None:
        message["session"] = session_key_digest(session_key)
    if except_session_key is not None:
        message["except_session"] = session_key_digest(except_session_key)
    _on_commit_robust(_group_send_quietly, user_group(user_id), message)


def session_key_digest(session_key: str) -> str:
    """How a `session.ended` message names a session: a digest, so no live session's key travels through Redis."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def _group_send_quietly(group: str, message: dict) -> None:
    try:
        _send_all([(group, message)])
    except Exception:
        logger.exception("Sending %s to %s failed", message["type"], group)


def notifications_prune(*, older_than: timedelta) -> int:
    """Delete read or unread notifications older than the retention period; returns how many."""
    old = Notification.objects.filter(created_at__lt=timezone.now() - older_than)
    deleted = 0
    # Deleting unread ones changes their recipients' counts: each recipient's version moves on with it,
    # one transaction per recipient so no two counter rows are ever locked in an order of their own.
    for recipient_id in old.filter(read_at=None).order_by().values_list("recipient_id", flat=True).distinct():
        with transaction.atomic():
            unread_version_next(user_id=recipient_id)
            deleted += old.filter(recipient_id=recipient_id).delete()[0]
    return deleted + old.delete()[0]
