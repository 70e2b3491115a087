from django.conf import settings
from django.db import models
from django.utils import timezone

# What a message's body may hold, in characters (code points) after trimming (support/rules.py).
BODY_MAX_LENGTH = 2000


class Conversation(models.Model):
    """The support conversation about one order, created by its first message.

    `last_seq` is its newest message's seq: the transaction that posts takes the next one under this row's lock
    (SELECT … FOR UPDATE), so concurrent posts queue and a rollback gives the number back, as the notifications'
    counter does: seqs 1, 2, 3… with no gaps or repeats. `last_public_seq` is the newest its customer can see
    (not an internal note). `reply_unnotified_seq` is the oldest staff reply the customer has not been told of by a
    notification (None: none), the durable timer of support/notifications.py: set by the post, cleared by the run.
    """

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="conversation")
    last_seq = models.PositiveBigIntegerField(default=0)
    last_public_seq = models.PositiveBigIntegerField(default=0)
    reply_unnotified_seq = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The reply notifications' scan: only conversations with a staff reply not yet notified.
            models.Index(
                fields=["reply_unnotified_seq"],
                condition=models.Q(reply_unnotified_seq__isnull=False),
                name="support_reply_unnotified",
            ),
        ]

    def __str__(self):
        return f"conversation on order {self.order_id}: {self.last_seq} message(s)"


class Message(models.Model):
    """One message of a conversation, stored before anyone is sent it; append-only.

    `client_id` is the author's own id for the send (a UUID): a retried send with the same one is the same message.
    An internal note is staff's only: never sent, listed or counted to the customer.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    # The seq of the customer-visible message before it (0: none), so a customer's socket tells a gap from a note.
    public_previous_seq = models.PositiveBigIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Which side wrote it, as it was then: a later change to the author's staff status does not move it.
    from_staff = models.BooleanField()
    body = models.TextField(max_length=BODY_MAX_LENGTH)
    internal = models.BooleanField(default=False)
    client_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="support_message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "author", "client_id"], name="support_message_client_id_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(internal=False) | models.Q(from_staff=True), name="support_message_internal_by_staff"
            ),
        ]

    def __str__(self):
        return f"#{self.seq} in conversation {self.conversation_id}{' (internal)' if self.internal else ''}"

    def save(self, *args, **kwargs):
        # A conversation is a record of what was said: a message, once written, is never rewritten.
        if not self._state.adding:
            raise ValueError("Message rows are append-only")
        super().save(*args, **kwargs)


class ConversationRead(models.Model):
    """How far one participant (the customer, or one staff member) has read a conversation; it only moves on."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_read_seq = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="support_read_unique_per_participant"),
        ]

    def __str__(self):
        return f"{self.user_id} read conversation {self.conversation_id} up to {self.last_read_seq}"
