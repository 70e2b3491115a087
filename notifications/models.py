from django.conf import settings
from django.db import models
from django.utils import timezone

from notifications.kinds import KIND_NAME_MAX_LENGTH, OFFLINE_CHANNELS


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
    # When a page first acknowledged showing it (an `ack` frame, cumulative): it reached the customer in-app.
    delivered_at = models.DateTimeField(null=True, blank=True)

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


OFFLINE_CHANNEL_CHOICES = [(channel.value, channel.value) for channel in OFFLINE_CHANNELS]


class NotificationPreference(models.Model):
    """A customer's choice for one topic on one offline channel; a topic with no row follows its kind's default.

    Read when a notification is recorded (its deliveries are decided then), so a change applies to
    notifications created after it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    topic = models.CharField(max_length=KIND_NAME_MAX_LENGTH)
    channel = models.CharField(max_length=10, choices=OFFLINE_CHANNEL_CHOICES)
    enabled = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "topic", "channel"], name="notification_preference_unique"),
        ]

    def __str__(self):
        return f"{self.user_id} {self.topic} {self.channel}: {'on' if self.enabled else 'off'}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # waiting for its due time
    SENT = "sent"
    SKIPPED = "skipped"  # reached the customer another way first (acknowledged or read), or turned off
    FAILED = "failed"  # gave up after retries; `error` says why


class NotificationDelivery(models.Model):
    """A notification's offline fallback on one channel: written with the notification, in its transaction,
    so a lost timer never means a lost email; the fallback rule (notifications/offline.py) decides at `due_at`.
    """

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=OFFLINE_CHANNEL_CHOICES)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    # Held by the one run sending it, until its send is over; an expired claim is taken up again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    # The email it went out in (one digest holds several notifications of one customer).
    message_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="notification_delivery_unique"),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=models.Q(state="pending"), name="notification_delivery_pending"),
        ]

    def __str__(self):
        return f"{self.channel} for notification {self.notification_id}: {self.state}"


class PushSubscription(models.Model):
    """One browser's Web Push subscription (its endpoint and keys), deleted when the push service says 404 or 410."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=2048, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    last_pushed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"push subscription {self.pk} of {self.user_id}"


class PushSend(models.Model):
    """One push of one delivery to one browser: written before the request, so a redelivered task never pushes
    the same notification to a device twice."""

    delivery = models.ForeignKey(NotificationDelivery, on_delete=models.CASCADE, related_name="push_sends")
    subscription = models.ForeignKey(PushSubscription, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "subscription"], name="push_send_unique_per_device"),
        ]

    def __str__(self):
        return f"push of delivery {self.delivery_id} to {self.subscription_id}"
