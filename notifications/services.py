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
from dataclasses import dataclass
from datetime import timedelta

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from notifications.claims import (
    notification_publish_failure_record,
    notifications_claim,
    notifications_claim_release,
    notifications_mark_published,
)
from notifications.frames import fanout_frame_check, notification_frame, notification_payload_check, unread_frame
from notifications.groups import user_group
from notifications.kinds import UnknownNotificationKind, notification_kind
from notifications.metrics import notification_publish_failures, notifications_published_count
from notifications.models import Notification, NotificationCounter
from notifications.offline import offline_deliveries_insert, offline_deliveries_plan_many
from notifications.publishing_loop import LOOP_GRACE, run_until_sent
from notifications.selectors import NO_UNREAD, UnreadState, unread_count, unread_states

logger = logging.getLogger(__name__)

# Ids recorded inside `notifications_batched()`, published together after commit.
_batch: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("notification_batch", default=None)

# How many group_send calls run concurrently inside one publish.
SEND_CONCURRENCY = 100
# What a bulk send may take per message before it is abandoned, on top of NOTIFICATION_PUBLISH_TIMEOUT: several
# times what one takes (docs/performance.md, appendix B, "The burst and scale-out").
SEND_SECONDS_PER_MESSAGE = 0.002
# How long a claim outlives its send's deadline and the caller's grace: time to mark the rows published.
CLAIM_MARGIN_SECONDS = 5.0
# What the layer raises when it cannot take messages at all (Redis down, unreachable or full), as opposed to
# a message it cannot take (one its msgpack cannot encode): the first stops the sweep, the second is the row's.
LAYER_ERRORS = (RedisError, OSError, ChannelFull)


@dataclass(frozen=True)
class Published:
    """What a publish did: how many rows went out, and whether Redis or PostgreSQL was unavailable."""

    count: int
    unavailable: bool = False


def notification_seq_next(*, recipient_id: int) -> int:
    """Take the recipient's next sequence number, inside the caller's transaction.

    One upsert: the counter row stays locked until commit, so concurrent
    transactions for one user queue here, and a rollback returns the number.
    A new notification changes the unread count, so its version moves on too.
    """
    return _seq_and_unread_version_next(recipient_id=recipient_id)[0]


def _seq_and_unread_version_next(*, recipient_id: int) -> tuple[int, int]:
    """`notification_seq_next`'s upsert, returning the unread version it moved on to as well."""
    table = NotificationCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, last_seq, unread_version) VALUES (%s, 1, 1) "  # the table name is ours
            f"ON CONFLICT (user_id) DO UPDATE SET last_seq = {table}.last_seq + 1, "
            f"unread_version = {table}.unread_version + 1 RETURNING last_seq, unread_version",
            [recipient_id],
        )
        return cursor.fetchone()


def notification_record(*, recipient_id: int, kind: str, payload: dict, actor=None) -> Notification:
    """Write a notification of a registered kind in the current transaction and publish it once that commits."""
    # An unregistered kind, or a payload its frame cannot carry (a reserved key, a url off the site), is refused
    # before anything is written.
    notification_kind(kind)
    notification_payload_check(payload)
    if not transaction.get_connection().in_atomic_block:
        # The seq lock and the outbox guarantee both need the caller's transaction.
        raise RuntimeError("notification_record must run inside the transaction that makes the change")
    seq, version = _seq_and_unread_version_next(recipient_id=recipient_id)
    notification = Notification(recipient_id=recipient_id, seq=seq, kind=kind, payload=payload, actor=actor)
    unread = UnreadState(count=_notification_insert(notification), version=version)
    batch = _batch.get()
    if batch is not None:
        batch.append(notification.pk)
    else:
        # The row and its unread count go to the hook as they are, so after COMMIT nothing is read before the
        # claim and the send (docs/performance.md, "One producer's changes").
        _on_commit_robust(
            notifications_send, notifications=[notification], path="commit", unread={recipient_id: unread}
        )
    return notification


def _notification_insert(notification: Notification) -> int:
    """Insert `notification` with its offline deliveries in one statement; returns its recipient's unread count.

    The count is read under the counter row's lock (`notification_seq_next`, the statement before), which every
    change to the user's unread set takes first: it is exact for the version that upsert returned, and carried in
    the frame, so the commit path needs no count of its own.
    """
    fields = [field for field in Notification._meta.concrete_fields if not field.primary_key]
    notification_table = connection.ops.quote_name(Notification._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = [field.get_db_prep_save(getattr(notification, field.attname), connection) for field in fields]
    sql = (
        f"WITH recorded AS (INSERT INTO {notification_table} ({columns})"  # names are ours, quoted
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id)"
    )
    planned = offline_deliveries_insert(notification=notification, notification_id="(SELECT id FROM recorded)")
    if planned is not None:
        deliveries_sql, deliveries_params = planned
        sql += f", planned AS ({deliveries_sql})"
        values += deliveries_params
    # The statement's snapshot does not hold the row it inserts: + 1 for it.
    recipient, read_at = (connection.ops.quote_name(Notification._meta.get_field(name).column)
                          for name in ("recipient", "read_at"))  # fmt: skip
    sql += (
        f" SELECT id, (SELECT COUNT(*) FROM {notification_table} WHERE {recipient} = %s AND {read_at} IS NULL) + 1"
        " FROM recorded"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, notification.recipient_id])
        notification.pk, unread = cursor.fetchone()
    notification._state.adding = False
    notification._state.db = connection.alias
    return unread


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


def notifications_publish(*, notification_ids: list[int]) -> Published:
    """Publish the given notifications that are still unpublished (a bulk change's); never raises.

    On failure (Redis or PostgreSQL down) the rows stay unpublished and the sweeper retries
    them; the order change is never affected.
    """
    try:
        notifications = list(
            Notification.objects.filter(pk__in=notification_ids, published_at=None, quarantined_at=None)
            .select_related("actor")
            .order_by("recipient_id", "seq")
        )
    except DatabaseError:
        # The change committed, then the database went away: raising here would fail the request
        # or task that made the change (tests/faults/test_postgres_restart.py).
        logger.exception("Reading %d notification(s) to publish failed; the sweeper will retry", len(notification_ids))
        return Published(0, unavailable=True)
    return notifications_send(notifications=notifications, path="batch")


def notifications_send(
    *, notifications: list[Notification], path: str, unread: dict[int, UnreadState] | None = None
) -> Published:
    """Claim committed notifications, push them to their groups, then mark them published; never raises.

    Each frame carries its recipient's unread count: `unread`'s (a change's own, read when it recorded the
    row), else as of the send. Only the rows this call claims
    are sent: one that another path is publishing or has published is left to it. A row whose
    frames cannot be built or sent is counted against it alone (claims.py); the others go out.
    `path` (commit, batch or sweeper) names the caller in the metrics (notifications/metrics.py).
    """
    notifications = _of_known_kinds(notifications)
    if not notifications:
        return Published(0)
    try:
        if unread is None:
            unread = unread_states(recipient_ids={notification.recipient_id for notification in notifications})
    except DatabaseError:
        logger.exception("Counting unread for %d notification(s) failed; the sweeper will retry", len(notifications))
        return Published(0, unavailable=True)
    # Built before the claim, as their number sizes its lease (a kind's fan-out adds its own).
    built, failures = {}, {}
    for notification in notifications:
        try:
            built[notification.pk] = _notification_messages(
                notification, unread=unread.get(notification.recipient_id, NO_UNREAD)
            )
        except Exception as error:  # a payload no frame can be made from, or a fan-out frame refused: the row's fault
            failures[notification.pk] = error
    claimed_until = timezone.now() + _claim_lease(messages=sum(map(len, built.values())))
    try:
        attempts = notifications_claim(notification_ids=[n.pk for n in notifications], until=claimed_until)
    except DatabaseError:
        logger.exception("Claiming %d notification(s) failed; the sweeper will retry", len(notifications))
        return Published(0, unavailable=True)
    claimed = [notification for notification in notifications if notification.pk in attempts]
    failures = {pk: error for pk, error in failures.items() if pk in attempts}  # the others are another path's
    messages, senders = [], []
    for notification in claimed:
        notification.publish_attempts = attempts[notification.pk]
        own = built.get(notification.pk, [])
        messages += own
        senders += [notification.pk] * len(own)
    try:
        outcomes = _send_each(messages)
    except Exception:
        logger.exception("Publishing %d notification(s) failed; the sweeper will retry", len(claimed))
        notification_publish_failures.inc(len(claimed))
        _claims_release_quietly([notification.pk for notification in claimed], until=claimed_until)
        return Published(0, unavailable=True)
    for sender, outcome in zip(senders, outcomes, strict=True):
        if outcome is not None:
            failures.setdefault(sender, outcome)
    sent = [notification.pk for notification in claimed if notification.pk not in failures]
    notifications_published_count(path=path, notifications=(n for n in claimed if n.pk not in failures))
    if failures:
        notification_publish_failures.inc(len(failures))
    try:
        notifications_mark_published(notification_ids=sent)
        for notification in claimed:
            if notification.pk in failures:
                notification_publish_failure_record(
                    notification=notification, error=failures[notification.pk], until=claimed_until
                )
    except DatabaseError:
        # Sent but not marked: the sweeper sends them again once the database is back and the claim is
        # over, and each socket drops a seq it has already delivered.
        logger.exception("Marking %d notification(s) published failed; the sweeper will resend", len(claimed))
    return Published(len(sent))


_unknown_kinds_logged: set[str] = set()


def _of_known_kinds(notifications: list[Notification]) -> list[Notification]:
    """The notifications whose kind this process knows; the others are left as they are, with no attempt counted.

    In a rolling deploy a newer version's kind can reach an older sweeper: a process that knows it publishes it.
    """
    known = []
    for notification in notifications:
        try:
            notification_kind(notification.kind)
        except UnknownNotificationKind:
            if notification.kind not in _unknown_kinds_logged:
                _unknown_kinds_logged.add(notification.kind)
                logger.warning(
                    "Left notifications of kind %r unpublished: this process does not know the kind, a process that "
                    "does will publish them (logged once per kind)",
                    notification.kind,
                )
        else:
            known.append(notification)
    return known


def _claim_lease(*, messages: int) -> timedelta:
    """How long a publish of up to `messages` holds its rows: past the longest its send may take."""
    return timedelta(seconds=_send_timeout(messages=messages) + LOOP_GRACE + CLAIM_MARGIN_SECONDS)


def _claims_release_quietly(notification_ids: list[int], *, until) -> None:
    try:
        notifications_claim_release(notification_ids=notification_ids, until=until)
    except DatabaseError:
        logger.exception("Releasing %d claim(s) failed; they expire by themselves", len(notification_ids))


def _notification_messages(notification: Notification, *, unread: UnreadState) -> list[tuple[str, dict]]:
    """The (group, message) pairs that announce `notification`: to its recipient, and its kind's fan-out."""
    frame = notification_frame(notification, unread=unread)
    messages = [(user_group(notification.recipient_id), {"type": "notification.created", "frame": frame})]
    fanout = notification_kind(notification.kind).fanout
    if fanout is not None:
        # Live frames with no seq: the consumer forwards them as they are, whatever the kind.
        messages += [
            (group, {"type": "frame.forward", "frame": fanout_frame_check(frame)})
            for group, frame in fanout(notification)
        ]
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
    """Send (group, message) pairs from sync code; raises the first failure."""
    for failure in _send_each(messages):
        if failure is not None:
            raise failure


def _send_each(messages: list[tuple[str, dict]]) -> list[Exception | None]:
    """Send (group, message) pairs from sync code, given time in proportion to how many there are.

    Returns what each message's send raised, or None; the layer's own failure raises.
    """
    if not messages:
        return []
    return run_until_sent(group_send_all, messages, timeout=_send_timeout(messages=len(messages)))


def _send_timeout(*, messages: int) -> float:
    return settings.NOTIFICATION_PUBLISH_TIMEOUT + messages * SEND_SECONDS_PER_MESSAGE


async def group_send_all(messages: list[tuple[str, dict]]) -> list[Exception | None]:
    """Send (group, message) pairs over one event loop, a bounded number at a time.

    Returns what each send raised, or None; a failure of the layer itself (LAYER_ERRORS) raises
    instead, after the messages sent alongside it, and the rest are not tried.
    """
    layer = get_channel_layer()
    outcomes: list[Exception | None] = []
    for start in range(0, len(messages), SEND_CONCURRENCY):
        chunk = messages[start : start + SEND_CONCURRENCY]
        sends = (layer.group_send(group, message) for group, message in chunk)
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, LAYER_ERRORS) or not isinstance(result, Exception | None):
                raise result
        outcomes += [result if isinstance(result, Exception) else None for result in results]
    return outcomes


def notifications_publish_pending(*, older_than: timedelta | None = None, chunk_size: int = 1000) -> int:
    """Publish notifications left unpublished for longer than `older_than` (the sweeper).

    Covers a process killed between commit and publish, and Redis outages. Rows another path has
    claimed are left to it; one that cannot be sent is passed over, each sweep trying it once, and
    quarantined after NOTIFICATION_PUBLISH_MAX_ATTEMPTS, so it never holds up the rows after it.
    A row of a kind this process does not know (a newer version's) is passed over with no attempt counted.
    """
    older_than = older_than if older_than is not None else timedelta(seconds=settings.NOTIFICATION_REPUBLISH_AFTER)
    cutoff = timezone.now() - older_than
    published = 0
    after_last = Q()
    while True:
        unclaimed = Q(publish_claimed_until=None) | Q(publish_claimed_until__lt=timezone.now())
        chunk = list(
            Notification.objects.filter(unclaimed, after_last, created_at__lte=cutoff)
            .filter(published_at=None, quarantined_at=None)
            .select_related("actor")
            .order_by("created_at", "pk")[:chunk_size]
        )
        if not chunk:
            return published
        sent = notifications_send(notifications=chunk, path="sweeper")
        if sent.unavailable:
            return published  # the layer or the database is down; try again on the next beat
        published += sent.count
        last = chunk[-1]
        after_last = Q(created_at__gt=last.created_at) | Q(created_at=last.created_at, pk__gt=last.pk)


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
            f"UPDATE {table} SET unread_version = unread_version + 1 "  # the table name is ours
            "WHERE user_id = %s RETURNING unread_version",
            [user_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def user_sockets_close(*, user_id: int, session_id: str | None = None, except_session_id: str | None = None) -> None:
    """Close a user's open sockets on every server process, after commit: all, only one session's, or all but one's."""
    message = {"type": "session.ended"}
    if session_id is not None:
        message["session"] = session_digest(session_id)
    if except_session_id is not None:
        message["except_session"] = session_digest(except_session_id)
    _on_commit_robust(_group_send_quietly, user_group(user_id), message)


def session_digest(session_id: str) -> str:
    """How a `session.ended` message names a session: a digest, so no live session's key travels through Redis."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


def group_send_on_commit(messages: list[tuple[str, dict]]) -> None:
    """Send (group, message) pairs once the caller's transaction commits, never before; a failure is logged.

    For an app's live frames whose rows are their own record (a chat message): a socket that misses one fills
    the gap from the database at the next, and a page resumes after the last it has (Zulip's send_event_on_commit).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("group_send_on_commit must run inside the transaction that makes the change")
    if messages:
        _on_commit_robust(_group_sends_quietly, messages)


def live_frames_send_on_commit(frames: list[tuple[str, dict]]) -> None:
    """Send an app's live frames (group, frame) once the caller's transaction commits: no seq, no row of their own.

    Each socket of the group forwards its frame as it is; a page that may have missed one refetches what it shows
    on every `hello` (My orders, on `order_placed`). The frames follow the fan-out rules (`fanout_frame_check`).
    """
    group_send_on_commit(
        [(group, {"type": "frame.forward", "frame": fanout_frame_check(frame)}) for group, frame in frames]
    )


def _group_sends_quietly(messages: list[tuple[str, dict]]) -> None:
    try:
        _send_all(messages)
    except Exception:
        logger.exception("Sending %d live message(s) (%s) failed", len(messages), messages[0][1]["type"])


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


# --- Many at once: a bulk change's notifications, set-based -------------------------------------


def notification_seqs_take(*, counts: dict[int, int]) -> dict[int, int]:
    """Take `counts[recipient]` sequence numbers for every recipient in one statement; returns each one's last.

    The counter rows are locked in user id order, the one order every bulk change takes them in, so two bulk
    changes never deadlock on them; a single change takes one row only. Locked until commit, as one by one.
    """
    if not counts:
        return {}
    recipients = sorted(counts)
    table = NotificationCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, last_seq, unread_version) "  # the table name is ours
            "SELECT user_id, taken, taken FROM unnest(%s::bigint[], %s::bigint[]) AS taking (user_id, taken) "
            f"ORDER BY user_id ON CONFLICT (user_id) DO UPDATE SET last_seq = {table}.last_seq + EXCLUDED.last_seq, "
            f"unread_version = {table}.unread_version + EXCLUDED.unread_version RETURNING user_id, last_seq",
            [recipients, [counts[recipient] for recipient in recipients]],
        )
        return dict(cursor.fetchall())


def notifications_record_many(*, notifications: list[Notification]) -> list[Notification]:
    """Write many unsaved notifications in the current transaction and publish them together once that commits.

    `notification_record`'s guarantees, set-based: every kind and payload checked before anything is written,
    each recipient's seqs gapless and in the order given, the offline deliveries planned, and one publish after
    commit (or the enclosing `notifications_batched()` block's). A few statements whatever their number.
    """
    for notification in notifications:
        notification_kind(notification.kind)
        notification_payload_check(notification.payload)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications_record_many must run inside the transaction that makes the change")
    if not notifications:
        return []
    counts: dict[int, int] = {}
    for notification in notifications:
        counts[notification.recipient_id] = counts.get(notification.recipient_id, 0) + 1
    last = notification_seqs_take(counts=counts)
    following = {recipient: last[recipient] - count for recipient, count in counts.items()}
    created_at = timezone.now()
    for notification in notifications:
        following[notification.recipient_id] += 1
        notification.seq = following[notification.recipient_id]
        notification.created_at = created_at
    Notification.objects.bulk_create(notifications)
    offline_deliveries_plan_many(notifications=notifications)
    batch = _batch.get()
    if batch is not None:
        batch.extend(notification.pk for notification in notifications)
    else:
        # The rows go to the hook as they are: after COMMIT only the unread counts are read, as on the commit path.
        _on_commit_robust(notifications_send, notifications=notifications, path="batch")
    return notifications
