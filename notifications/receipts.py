"""Delivery receipts: a page that has shown a user's notifications says so (an `ack` frame, docs/protocol.md)."""

from django.utils import timezone

from notifications.models import Notification


def notifications_mark_delivered(*, user_id: int, up_to_seq: int, after_seq: int = 0) -> int:
    """Record that the user's notifications after `after_seq` up to `up_to_seq` reached a page; returns how many.

    One UPDATE, idempotent: a notification delivered before keeps its first time. `after_seq` is what the
    same socket acknowledged already, so each ack reads only the seqs that are new to it.
    """
    return Notification.objects.filter(
        recipient_id=user_id, seq__gt=after_seq, seq__lte=up_to_seq, delivered_at=None
    ).update(delivered_at=timezone.now())
