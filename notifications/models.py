from django.conf import settings
from django.db import models
from django.utils import timezone

from notifications.kinds import KIND_NAME_MAX_LENGTH


class Notification(models.Model):
    """One event for one recipient: the outbox row that the socket delivers and the page lists.

    Written in the same transaction as the change it describes, so it exists if and
    only if that change committed. `seq` numbers a recipient's notifications 1, 2, 3…
    with no gaps; clients resume with `?after=<seq>`.
    """

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    seq = models.PositiveBigIntegerField()
    # A registered kind's name (notifications/kinds.py): the apps that own kinds define them, not this model.
    kind = models.CharField(max_length=KIND_NAME_MAX_LENGTH)
    payload = models.JSONField()
    # Who caused it (staff, the customer, or None for the system); shown to staff only.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    # Held by the one path publishing the row (its after-commit hook, a batch or the sweeper) until its send is over.
    publish_claimed_until = models.DateTimeField(null=True, blank=True)
    # Sends that failed for this row alone (not for the layer being down), the last one's reason, and when the
    # sweeper gave up on it: a quarantined row reaches sockets only from the database (gap-fill and resume).
    publish_attempts = models.PositiveSmallIntegerField(default=0)
    publish_error = models.TextField(blank=True, default="")
    quarantined_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["recipient", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["recipient", "seq"], name="notification_seq_unique_per_recipient"),
        ]
        indexes = [
            # The sweeper's scan: only rows still waiting to be published.
            models.Index(
                fields=["created_at"],
                condition=models.Q(published_at=None, quarantined_at=None),
                name="notification_unpublished",
            ),
            # The unread badge.
            models.Index(fields=["recipient"], condition=models.Q(read_at=None), name="notification_unread"),
        ]

    def __str__(self):
        return f"#{self.seq} for {self.recipient_id}: {self.payload.get('title', self.kind)}"


class NotificationCounter(models.Model):
    """The last `seq` handed out to a user, and the version of their unread count.

    Incremented inside the transaction that records a notification: the row lock
    serialises concurrent transactions for one user, and a rollback takes the
    number back, so sequences never have gaps or repeats.

    `unread_version` moves on in the same transaction as every change to the user's
    unread set (a notification recorded, a mark-read, a prune), under the same lock,
    so versions follow commit order and one snapshot gives a count and its version.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    unread_version = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.user_id}: {self.last_seq}"
