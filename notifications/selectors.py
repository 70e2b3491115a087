"""Reads of notifications: unread counts and the resume backlog."""

from dataclasses import dataclass

from django.db.models import Count, Min

from notifications.models import Notification, NotificationCounter


def unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at=None).count()


def unread_counts(*, recipient_ids: set[int]) -> dict[int, int]:
    """Unread counts for many users in one query."""
    rows = (
        Notification.objects.filter(recipient_id__in=recipient_ids, read_at=None)
        .values("recipient_id")
        .annotate(unread=Count("pk"))
    )
    return {row["recipient_id"]: row["unread"] for row in rows}


def last_seq(*, user_id: int) -> int:
    return NotificationCounter.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


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
    unread: int
    reset: bool
    backlog: list[Notification]


def notifications_resume(*, user_id: int, after_seq: int | None, max_backlog: int) -> Resume:
    """The state a socket needs on connect, and what it missed since `after_seq`.

    A reset (the page refetches) replaces the backlog when the client claims a seq
    we never issued, when part of what it missed was pruned, or when it missed
    more than `max_backlog`.
    """
    current = last_seq(user_id=user_id)
    unread = unread_count(user_id=user_id)
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
    return Resume(
        last_seq=current, unread=unread, reset=False, backlog=notifications_between(user_id=user_id, after_seq=after_seq)
    )
