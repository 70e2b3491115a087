"""The offline fallback, in one place: the deliveries a notification gets when it is recorded, and the decision at
their due time.

Recorded: in the notification's own transaction, one `NotificationDelivery` per offline channel that is on for its
topic (the customer's choices over the kind's defaults): email due NOTIFICATION_EMAIL_DELAY after it, push due
NOTIFICATION_PUSH_DELAY after it if the customer has a browser subscribed. The rows are the timer: if beat or every
worker was down, the next run catches up.

Due: a run (the beat's `deliver_notifications` task, or `manage.py notifications_deliver` in embedded mode) claims
due rows with SELECT … FOR UPDATE SKIP LOCKED and a lease (`claimed_until`), so two runs never take the same row and
a run killed mid-send is taken over once its lease is over. A row whose notification a page acknowledged
(`delivered_at`) or the customer read is skipped, as is one whose channel the customer has turned off since. One
customer's due emails, with their other pending ones, go out as one email (a digest), marked sent with its
Message-ID right after the SMTP server accepted it; a failed send is retried after a doubling wait, then `failed`
with its error. docs/reliability.md, "Offline deliveries", says what the one window left can do.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from notifications.email import notification_email
from notifications.kinds import Channel, UnknownNotificationKind, notification_topic
from notifications.models import (
    DeliveryState,
    Notification,
    NotificationCounter,
    NotificationDelivery,
    NotificationPreference,
    PushSubscription,
)
from notifications.preferences import offline_channels_chosen
from notifications.push import push_deliver, push_enabled

logger = logging.getLogger(__name__)

# Customers emailed (or batches of pushes sent) by one run at most: a run ends, and the next beat's takes over.
CLAIMS_PER_RUN = 100
# Pushes claimed together: few, as they are sent one after another under one lease.
PUSHES_PER_CLAIM = 10
ERROR_MAX_LENGTH = 2000


@dataclass
class DeliveriesRun:
    """What one run did: deliveries sent, skipped (reached another way, or turned off) and failed sends."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class _Claim:
    deliveries: list[NotificationDelivery] = field(default_factory=list)
    claimed_until: object = None
    attempts: int = 0
    message_id: str = ""
    recipient: object = None


# --- At record time ------------------------------------------------------------------------------


def offline_deliveries_plan(*, notification: Notification) -> None:
    """Write `notification`'s offline deliveries in the caller's transaction: one per channel on for its topic.

    One statement whatever the channels, as a bulk change records thousands of notifications in one transaction:
    `offline_channels_for`'s rule (a choice, else the default) in SQL, and push only if the shop has push keys
    and a browser is subscribed now.
    """
    planned = offline_deliveries_insert(notification=notification)
    if planned is not None:
        sql, params = planned
        with connection.cursor() as cursor:
            cursor.execute(sql, [notification.pk, *params])


def offline_deliveries_insert(*, notification: Notification, notification_id: str = "%s") -> tuple[str, list] | None:
    """The INSERT that `offline_deliveries_plan` runs, and its parameters; None when the notification gets none.

    `notification_id` is the SQL giving the row's id: a placeholder (its value first, before the parameters), or
    an expression over the statement that inserts the row, so `notification_record` writes both in one round trip.
    """
    try:
        topic = notification_topic(notification.kind, notification.payload)
    except Exception:  # a payload its kind cannot place (the kind's bug): in-app only, and the change still commits
        logger.warning("No offline delivery for user %s's notification %s: its topic failed",
                       notification.recipient_id, notification.seq, exc_info=True)  # fmt: skip
        return None
    if topic is None:
        return None
    due = {
        channel: connection.ops.adapt_datetimefield_value(notification.created_at + timedelta(seconds=delay))
        for channel, delay in (
            (Channel.EMAIL, settings.NOTIFICATION_EMAIL_DELAY),
            (Channel.PUSH, settings.NOTIFICATION_PUSH_DELAY),
        )
    }
    deliveries, preferences, subscriptions = (
        model._meta.db_table for model in (NotificationDelivery, NotificationPreference, PushSubscription)
    )
    sql = (
        # The table names are ours; every value is a parameter.
        f"INSERT INTO {deliveries} (notification_id, channel, due_at, state, attempts, error, message_id) "
        f"SELECT {notification_id}, offline.channel, offline.due_at, %s, 0, '', '' FROM ("
        "SELECT %s AS channel, %s AS due_at, %s AS by_default UNION ALL SELECT %s, %s, %s) AS offline "
        f"LEFT JOIN {preferences} AS preference ON preference.user_id = %s AND preference.topic = %s "
        "AND preference.channel = offline.channel "
        "WHERE COALESCE(preference.enabled, offline.by_default) "
        f"AND (offline.channel <> %s OR (%s AND EXISTS (SELECT 1 FROM {subscriptions} WHERE user_id = %s)))"
    )
    params = [
        DeliveryState.PENDING,
        *(value for channel in (Channel.EMAIL, Channel.PUSH)
          for value in (channel.value, due[channel], channel in topic.offline_defaults)),
        notification.recipient_id,
        topic.key,
        Channel.PUSH.value,
        push_enabled(),
        notification.recipient_id,
    ]  # fmt: skip
    return sql, params


def offline_deliveries_skip(*, recipient_id: int) -> int:
    """Skip every pending offline delivery of one user (history that is no news, such as seeded demo orders)."""
    return NotificationDelivery.objects.filter(
        notification__recipient_id=recipient_id, state=DeliveryState.PENDING
    ).update(state=DeliveryState.SKIPPED, finished_at=timezone.now())


# --- At due time ---------------------------------------------------------------------------------


def offline_deliveries_run() -> DeliveriesRun:
    """Send the deliveries that are due: each customer's emails as one, then the pushes. A failed send is retried."""
    run = DeliveriesRun()
    for _ in range(CLAIMS_PER_RUN):
        claim = _email_claim(run=run)
        if claim is None:
            break
        if claim.deliveries:
            _email_send(claim, run=run)
    for _ in range(CLAIMS_PER_RUN):
        claims = _push_claim(run=run)
        if claims is None:
            break
        for claim in claims:
            _push_send(claim, run=run)
    return run


def _ready(*, now, channel: Channel):
    """Pending rows of `channel` that no live run holds and that are not waiting for a retry."""
    return NotificationDelivery.objects.filter(state=DeliveryState.PENDING, channel=channel).filter(
        Q(claimed_until=None) | Q(claimed_until__lt=now), Q(next_attempt_at=None) | Q(next_attempt_at__lte=now)
    )


def _email_claim(*, run: DeliveriesRun) -> _Claim | None:
    """Take the next customer with an email due, and their other ready emails; None when no email is due.

    The claim is empty when all that was due was skipped and the rest is not due yet: that waits for its time.
    """
    now = timezone.now()
    with transaction.atomic():
        ready = _ready(now=now, channel=Channel.EMAIL)
        recipient_id = _email_recipient_lock(ready.filter(due_at__lte=now))
        if recipient_id is None:
            return None
        # The window: everything recorded for them until now joins the email that is due (a digest, not one each).
        window = now + timedelta(seconds=settings.NOTIFICATION_EMAIL_DELAY)
        deliveries = list(
            ready.filter(notification__recipient_id=recipient_id, due_at__lte=window)
            .select_for_update(of=("self",))
            .select_related("notification")
            .order_by("notification__seq")
        )
        # A send cut short (killed, refused) goes again as it was, under its Message-ID: a receiver that already has
        # it (the server accepted it just before the kill) may then drop it as a duplicate.
        earlier = next((delivery.message_id for delivery in deliveries if delivery.message_id), "")
        if earlier:
            deliveries = [delivery for delivery in deliveries if delivery.message_id == earlier]
        recipient = get_user_model().objects.filter(pk=recipient_id).first()
        wanted = _still_wanted(deliveries, chosen=offline_channels_chosen(user_id=recipient_id))
        if recipient is None or not recipient.is_active or not recipient.email:
            wanted = []
        _skip([delivery for delivery in deliveries if delivery not in wanted], now=now, run=run)
        if not any(delivery.due_at <= now for delivery in wanted):
            return _Claim()
        claim = _Claim(
            deliveries=wanted,
            claimed_until=timezone.now() + timedelta(seconds=settings.NOTIFICATION_DELIVERY_LEASE),
            # One count for the whole email, so its rows wait for, and give up on, the same retry.
            attempts=max(delivery.attempts for delivery in wanted) + 1,
            message_id=earlier or make_msgid(domain=_message_id_domain()),
            recipient=recipient,
        )
        NotificationDelivery.objects.filter(pk__in=[delivery.pk for delivery in wanted]).update(
            claimed_until=claim.claimed_until, attempts=claim.attempts, message_id=claim.message_id
        )
    return claim


def _email_recipient_lock(due) -> int | None:
    """The customer whose email is due first and whom no other run is claiming for; locked until this claim commits.

    Their counter row is the lock (SKIP LOCKED): two runs never split one customer's emails into two messages. A
    customer whose notification is still being recorded holds it too, and is taken on the next pass, with it.
    """
    candidates = dict.fromkeys(due.order_by("due_at", "pk").values_list("notification__recipient_id", flat=True)[:50])
    for recipient_id in candidates:
        counters = NotificationCounter.objects.filter(user_id=recipient_id).select_for_update(skip_locked=True)
        if counters.values_list("user_id", flat=True).first() is not None:
            return recipient_id
    return None


def _email_send(claim: _Claim, *, run: DeliveriesRun) -> None:
    """Send one customer's email; marked sent right after the server accepted it, retried if it did not."""
    try:
        message = notification_email(
            recipient=claim.recipient,
            notifications=[delivery.notification for delivery in claim.deliveries],
            message_id=claim.message_id,
        )
        mail = get_connection()
        mail.open()  # opened here, so the server's QUIT, after its 250, can no longer fail the send
        try:
            if not mail.send_messages([message]):
                raise RuntimeError("the email backend sent nothing")
        finally:
            _close_quietly(mail)
    except Exception as error:  # SMTP down or refusing, or a kind's template failing: this email's alone
        logger.warning("Emailing %d notification(s) to user %s failed", len(claim.deliveries), claim.recipient.pk,
                       exc_info=True)  # fmt: skip
        _failed(claim, error=error, run=run)
        return
    _sent(claim, run=run)


def _push_claim(*, run: DeliveriesRun) -> list[_Claim] | None:
    """Take a few due pushes; None when none is due."""
    now = timezone.now()
    with transaction.atomic():
        # Locked for this claim (never the notifications), passing over the rows another run is claiming.
        deliveries = list(
            _ready(now=now, channel=Channel.PUSH)
            .filter(due_at__lte=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("notification")
            .order_by("due_at", "pk")[:PUSHES_PER_CLAIM]
        )
        if not deliveries:
            return None
        chosen = {}
        wanted = []
        for delivery in deliveries:
            recipient_id = delivery.notification.recipient_id
            if recipient_id not in chosen:
                chosen[recipient_id] = offline_channels_chosen(user_id=recipient_id)
            wanted += _still_wanted([delivery], chosen=chosen[recipient_id])
        _skip([delivery for delivery in deliveries if delivery not in wanted], now=now, run=run)
        claimed_until = timezone.now() + timedelta(seconds=settings.NOTIFICATION_DELIVERY_LEASE)
        claims = [
            _Claim(deliveries=[delivery], claimed_until=claimed_until, attempts=delivery.attempts + 1)
            for delivery in wanted
        ]
        for claim in claims:
            [delivery] = claim.deliveries
            NotificationDelivery.objects.filter(pk=delivery.pk).update(
                claimed_until=claimed_until, attempts=claim.attempts
            )
            delivery.claimed_until, delivery.attempts = claimed_until, claim.attempts
    return claims


def _push_send(claim: _Claim, *, run: DeliveriesRun) -> None:
    """Push one notification to the customer's browsers (notifications/push.py); retried if it fails."""
    [delivery] = claim.deliveries
    try:
        push_deliver(delivery=delivery)
    except Exception as error:  # the push service down or refusing: this delivery's alone
        logger.warning("Pushing notification %s failed", delivery.notification_id, exc_info=True)
        _failed(claim, error=error, run=run)
        return
    _sent(claim, run=run)


def _still_wanted(deliveries: Iterable[NotificationDelivery], *, chosen: dict) -> list[NotificationDelivery]:
    """The deliveries still to make: their notification reached no page and was not read, and the channel is on."""
    wanted = []
    for delivery in deliveries:
        notification = delivery.notification
        if notification.delivered_at is not None or notification.read_at is not None:
            continue
        try:
            topic = notification_topic(notification.kind, notification.payload)
        except UnknownNotificationKind:
            continue  # a kind no app registers any more
        if topic is not None and Channel(delivery.channel) in chosen.get(topic.key, ()):
            wanted.append(delivery)
    return wanted


def _skip(deliveries: list[NotificationDelivery], *, now, run: DeliveriesRun) -> None:
    if deliveries:
        NotificationDelivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).update(
            state=DeliveryState.SKIPPED, finished_at=now, claimed_until=None
        )
        run.skipped += len(deliveries)


def _sent(claim: _Claim, *, run: DeliveriesRun) -> None:
    ids = [delivery.pk for delivery in claim.deliveries]
    marked = NotificationDelivery.objects.filter(pk__in=ids, claimed_until=claim.claimed_until).update(
        state=DeliveryState.SENT, finished_at=timezone.now(), claimed_until=None, next_attempt_at=None, error=""
    )
    if marked < len(ids):
        # The send outlasted NOTIFICATION_DELIVERY_LEASE and another run took some rows over: they may go twice.
        logger.warning("%d of %d deliveries were taken over before their send ended", len(ids) - marked, len(ids))
    run.sent += marked


def _failed(claim: _Claim, *, error: Exception, run: DeliveriesRun) -> None:
    """Retry after a wait that doubles with each attempt, or give up after NOTIFICATION_DELIVERY_MAX_ATTEMPTS."""
    now = timezone.now()
    text = f"{type(error).__name__}: {error}"[:ERROR_MAX_LENGTH]
    owned = NotificationDelivery.objects.filter(
        pk__in=[delivery.pk for delivery in claim.deliveries], claimed_until=claim.claimed_until
    )
    if claim.attempts >= settings.NOTIFICATION_DELIVERY_MAX_ATTEMPTS:
        owned.update(state=DeliveryState.FAILED, error=text, finished_at=now, claimed_until=None)
    else:
        wait = timedelta(seconds=settings.NOTIFICATION_DELIVERY_RETRY_DELAY * 2 ** (claim.attempts - 1))
        owned.update(error=text, next_attempt_at=now + wait, claimed_until=None)
    run.failed += len(claim.deliveries)


def _close_quietly(mail) -> None:
    try:
        mail.close()
    except Exception:  # the message is already accepted; a failing QUIT changes nothing
        logger.warning("Closing the email connection failed", exc_info=True)


def _message_id_domain() -> str:
    """The sender's domain, for Message-IDs (Django's default would look the host name up in DNS)."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def offline_deliveries_plan_many(*, notifications: list[Notification]) -> None:
    """`offline_deliveries_plan` for many notifications in one statement: a bulk change's thousands.

    The same rule per notification and channel (a choice, else the topic's default; push only with the shop's
    push keys and a browser subscribed now), joined over arrays instead of run once per notification.
    """
    rows: list[tuple] = []
    for notification in notifications:
        try:
            topic = notification_topic(notification.kind, notification.payload)
        except Exception:  # as one by one: this notification in-app only, and the change still commits
            logger.warning("No offline delivery for notification %s: its topic failed", notification.pk, exc_info=True)
            continue
        if topic is None:
            continue
        for channel, delay in (
            (Channel.EMAIL, settings.NOTIFICATION_EMAIL_DELAY),
            (Channel.PUSH, settings.NOTIFICATION_PUSH_DELAY),
        ):
            due_at = notification.created_at + timedelta(seconds=delay)
            rows.append((notification.pk, notification.recipient_id, topic.key, channel.value, due_at,
                         channel in topic.offline_defaults))  # fmt: skip
    if not rows:
        return
    deliveries, preferences, subscriptions = (
        model._meta.db_table for model in (NotificationDelivery, NotificationPreference, PushSubscription)
    )
    columns = list(zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            # The table names are ours; every value is a parameter.
            f"INSERT INTO {deliveries} (notification_id, channel, due_at, state, attempts, error, message_id) "
            "SELECT offline.notification_id, offline.channel, offline.due_at, %s, 0, '', '' "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::boolean[]) "
            "AS offline (notification_id, user_id, topic, channel, due_at, by_default) "
            f"LEFT JOIN {preferences} AS preference ON preference.user_id = offline.user_id "
            "AND preference.topic = offline.topic AND preference.channel = offline.channel "
            "WHERE COALESCE(preference.enabled, offline.by_default) AND (offline.channel <> %s OR (%s AND EXISTS "
            f"(SELECT 1 FROM {subscriptions} AS subscription WHERE subscription.user_id = offline.user_id)))",
            [DeliveryState.PENDING, *(list(column) for column in columns), Channel.PUSH.value, push_enabled()],
        )
