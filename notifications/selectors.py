"""Reads of notifications: unread counts and the resume backlog."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from notifications.models import Notification, NotificationCounter


def unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at=None).count()


class UnreadState(NamedTuple):
    """A user's unread count and its version: a client shows the count of the highest version it has seen."""

    count: int
    version: int


NO_UNREAD = UnreadState(count=0, version=0)


def unread_states(*, recipient_ids: set[int]) -> dict[int, UnreadState]:
    """Unread counts and their versions for many users, in one plain query; users never notified are left out.

    One statement reads both from one snapshot, so a count always belongs to its version. Plain SQL because
    every publish runs it between COMMIT and the send (docs/performance.md, appendix A).
    """
    ids = list(recipient_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_unread_states_sql().format(ids=", ".join(["%s"] * len(ids))), ids)
        return {user_id: UnreadState(count=count, version=version) for user_id, version, count in cursor.fetchall()}


@cache
def _unread_states_sql() -> str:
    """The query of `unread_states`, with `{ids}` standing for one placeholder per recipient."""
    quote = connection.ops.quote_name
    counter, notification = NotificationCounter._meta, Notification._meta
    user = f"{quote(counter.db_table)}.{quote(counter.get_field('user').column)}"
    return (
        f"SELECT {user}, {quote(counter.get_field('unread_version').column)},"  # names are ours, quoted
        f" (SELECT COUNT(*) FROM {quote(notification.db_table)}"
        f" WHERE {quote(notification.get_field('recipient').column)} = {user}"
        f" AND {quote(notification.get_field('read_at').column)} IS NULL)"
        f" FROM {quote(counter.db_table)} WHERE {user} IN ({{ids}})"
    )


def last_seq(*, user_id: int) -> int:
    return NotificationCounter.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


@dataclass(frozen=True)
class LiveState:
    """What a page and a socket start from: the user's last seq and unread count (with its version)."""

    last_seq: int
    unread: UnreadState


@cache
def _live_state_sql() -> str:
    quote = connection.ops.quote_name
    counter, notification = NotificationCounter._meta, Notification._meta
    return (
        f"SELECT (SELECT {quote(counter.get_field('last_seq').column)} FROM {quote(counter.db_table)}"
        f" WHERE {quote(counter.get_field('user').column)} = %s),"
        f" (SELECT {quote(counter.get_field('unread_version').column)} FROM {quote(counter.db_table)}"
        f" WHERE {quote(counter.get_field('user').column)} = %s),"
        f" (SELECT COUNT(*) FROM {quote(notification.db_table)}"
        f" WHERE {quote(notification.get_field('recipient').column)} = %s"
        f" AND {quote(notification.get_field('read_at').column)} IS NULL)"
    )


def live_state(*, user_id: int) -> LiveState:
    """`last_seq` and the unread count with its version, in one round trip (and one snapshot).

    Every page render and every socket connect needs both: one plain query, not two through the ORM
    (docs/performance.md, appendix A). No counter row means no notification yet: seq 0.
    """
    with connection.cursor() as cursor:
        cursor.execute(_live_state_sql(), [user_id, user_id, user_id])
        current, version, count = cursor.fetchone()
    return LiveState(last_seq=current or 0, unread=UnreadState(count=count, version=version or 0))


def notifications_between(*, user_id: int, after_seq: int, up_to_seq: int | None = None) -> list[Notification]:
    """A user's notifications with after_seq < seq (<= up_to_seq), in order."""
    rows = Notification.objects.filter(recipient_id=user_id, seq__gt=after_seq)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    return list(rows.order_by("seq"))


@dataclass(frozen=True)
class Resume:
    """Where a connecting socket starts: its hello, and the backlog or a reset."""

    last_seq: int
    unread: UnreadState
    reset: bool
    backlog: list[Notification]


def notifications_resume(*, user_id: int, after_seq: int | None, max_backlog: int) -> Resume:
    """The state a socket needs on connect, and what it missed since `after_seq`.

    A reset (the page refetches) replaces the backlog when the client claims a seq
    we never issued, when part of what it missed was pruned, or when it missed
    more than `max_backlog`.
    """
    state = live_state(user_id=user_id)
    current, unread = state.last_seq, state.unread
    if after_seq is None or after_seq == current:
        return Resume(last_seq=current, unread=unread, reset=False, backlog=[])
    if after_seq > current:
        return Resume(last_seq=current, unread=unread, reset=True, backlog=[])
    missed = Notification.objects.filter(recipient_id=user_id, seq__gt=after_seq).aggregate(
        count=Count("pk"), first=Min("seq")
    )
    pruned = missed["first"] != after_seq + 1
    if pruned or missed["count"] > max_backlog:
        return Resume(last_seq=current, unread=unread, reset=True, backlog=[])
    backlog = notifications_between(user_id=user_id, after_seq=after_seq)
    return Resume(last_seq=current, unread=unread, reset=False, backlog=backlog)


@dataclass(frozen=True)
class UnpublishedBacklog:
    """The outbox's waiting rows: how many, and when the oldest was created (None when none waits)."""

    count: int
    oldest: datetime | None


def unpublished_backlog(*, older_than: timedelta | None = None) -> UnpublishedBacklog:
    """Committed notifications not yet published nor quarantined (older than `older_than`): one indexed read."""
    rows = Notification.objects.filter(published_at=None, quarantined_at=None)
    if older_than is not None:
        rows = rows.filter(created_at__lt=timezone.now() - older_than)
    backlog = rows.aggregate(count=Count("pk"), oldest=Min("created_at"))
    return UnpublishedBacklog(count=backlog["count"], oldest=backlog["oldest"])
