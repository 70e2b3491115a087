"""The offline fallback (notifications/offline.py): planned with the notification, decided at its due time.

Emails go to a real SMTP server (aiosmtpd, the `smtp` fixture) and are read back as it received them.
"""

import itertools
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.kinds import Channel, notification_topic
from notifications.models import DeliveryState, Notification, NotificationDelivery, NotificationPreference
from notifications.offline import offline_deliveries_plan, offline_deliveries_run
from notifications.preferences import offline_channels_for
from notifications.push_subscriptions import push_subscription_parse, push_subscription_save
from notifications.services import notification_record
from notifications.tasks import deliver_notifications
from orders.models import Order, OrderStatus
from orders.notifications import order_status_payload
from orders.transitions import order_transition
from orders.transitions_bulk import orders_transition_bulk
from tests.concurrency import run_concurrently
from tests.factories import UserFactory, place_order
from tests.faults.client import wait_until_sync
from tests.notifications.push_service import BrowserKeys, LocalPushService

pytestmark = pytest.mark.django_db

DEADLINE = 15.0


def ship(order: Order, **kwargs) -> Notification:
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, **kwargs)
    return Notification.objects.filter(recipient_id=order.customer_id).latest("seq")


def processing_order(customer) -> Order:
    """An order one step before shipping: its paid and processing news are in-app only by default."""
    return place_order(customer=customer, status=OrderStatus.PROCESSING)


def email_of(notification: Notification) -> NotificationDelivery:
    return NotificationDelivery.objects.get(notification=notification, channel=Channel.EMAIL)


def run_until(condition, *, deadline: float = DEADLINE) -> None:
    """Run the fallback as beat would (every 0.1 s here), until `condition()` holds; fail at the deadline."""

    def ran_and_holds():
        offline_deliveries_run()
        return condition()

    wait_until_sync(ran_and_holds, deadline=deadline, describe=lambda: list(NotificationDelivery.objects.values()))


@pytest.fixture
def now_due(settings):
    """Deliveries due as soon as they are recorded: the due-time rules without waiting out a delay."""
    settings.NOTIFICATION_EMAIL_DELAY = 0
    settings.NOTIFICATION_PUSH_DELAY = 0


# --- Planned with the notification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "email_choice", "push_choice", "subscribed"),
    list(itertools.product([OrderStatus.PAID, OrderStatus.SHIPPED], [None, True, False], [None, True, False],
                           [False, True])),
)  # fmt: skip
def test_a_notification_gets_one_delivery_per_channel_its_customer_has_on_and_push_only_with_a_browser(
    status, email_choice, push_choice, subscribed, settings
):
    """Every combination of a topic's default, the customer's choice per channel, and a push subscription."""
    settings.NOTIFICATION_EMAIL_DELAY, settings.NOTIFICATION_PUSH_DELAY = 120, 10
    settings.WEBPUSH_VAPID_PRIVATE_KEY = "set"  # the shop can push (only whether it is set counts here)
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PENDING_PAYMENT)
    topic_key = f"order.{status}"
    for channel, choice in ((Channel.EMAIL, email_choice), (Channel.PUSH, push_choice)):
        if choice is not None:
            NotificationPreference.objects.create(user=customer, topic=topic_key, channel=channel, enabled=choice)
    if subscribed:
        customer.push_subscriptions.create(endpoint=f"https://push.example/{customer.pk}", p256dh="k", auth="a")

    for step in [OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.SHIPPED][: 1 if status == "paid" else 3]:
        order_transition(order_id=order.pk, to_status=step)

    notification = Notification.objects.get(recipient=customer, payload__order__status=status)
    topic = notification_topic(notification.kind, notification.payload)
    expected = {c for c in offline_channels_for(user_id=customer.pk, topic=topic) if c != Channel.PUSH or subscribed}
    deliveries = {Channel(d.channel): d for d in NotificationDelivery.objects.filter(notification=notification)}
    assert set(deliveries) == expected
    delays = {Channel.EMAIL: timedelta(seconds=120), Channel.PUSH: timedelta(seconds=10)}
    for channel, delivery in deliveries.items():
        assert delivery.due_at == notification.created_at + delays[channel]
        assert (delivery.state, delivery.attempts, delivery.claimed_until) == (DeliveryState.PENDING, 0, None)


def test_a_shop_without_push_keys_plans_no_push_even_for_a_subscribed_browser(settings):
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    customer = UserFactory()
    customer.push_subscriptions.create(endpoint=f"https://push.example/{customer.pk}", p256dh="k", auth="a")
    order = place_order(customer=customer, status=OrderStatus.PENDING_PAYMENT)

    for step in [OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.SHIPPED]:
        order_transition(order_id=order.pk, to_status=step)

    shipped = Notification.objects.get(recipient=customer, payload__order__status=OrderStatus.SHIPPED)
    assert set(NotificationDelivery.objects.filter(notification=shipped).values_list("channel", flat=True)) == {
        Channel.EMAIL
    }


def test_planning_a_notifications_deliveries_is_one_statement():
    """Bulk changes record thousands of notifications in one transaction: one query each, whatever the channels."""
    order = processing_order(UserFactory())
    order.status = OrderStatus.SHIPPED
    notification = Notification.objects.create(
        recipient=order.customer, seq=99, kind="order.status_changed",
        payload=order_status_payload(order, previous_status="processing"),
    )  # fmt: skip

    with CaptureQueriesContext(connection) as queries:
        offline_deliveries_plan(notification=notification)

    assert len(queries) == 1
    assert list(NotificationDelivery.objects.filter(notification=notification).values_list("channel", flat=True)) == [
        Channel.EMAIL
    ]


def test_a_notification_of_no_topic_gets_no_delivery_and_costs_no_query():
    order = place_order(customer=UserFactory())  # pending payment: the customer is on the page that placed it
    notification = Notification.objects.create(
        recipient=order.customer, seq=1, kind="order.status_changed",
        payload=order_status_payload(order, previous_status=None),
    )  # fmt: skip

    with CaptureQueriesContext(connection) as queries:
        offline_deliveries_plan(notification=notification)

    assert len(queries) == 0
    assert not NotificationDelivery.objects.filter(notification=notification).exists()


def test_a_payload_its_kind_cannot_place_under_a_topic_is_recorded_in_app_only(caplog):
    customer = UserFactory()
    with transaction.atomic():
        notification = notification_record(
            recipient_id=customer.pk, kind="order.status_changed", payload={"title": "An order changed"}
        )

    assert Notification.objects.filter(pk=notification.pk).exists()
    assert not NotificationDelivery.objects.filter(notification=notification).exists()
    assert "its topic failed" in caplog.text


def test_a_bulk_change_plans_each_customers_email():
    orders = [processing_order(UserFactory()) for _ in range(3)]

    orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.SHIPPED)

    shipped = Notification.objects.filter(payload__order__status=OrderStatus.SHIPPED)
    assert NotificationDelivery.objects.filter(notification__in=shipped, channel=Channel.EMAIL).count() == 3


# --- At due time ---------------------------------------------------------------------------------


def test_a_shipped_order_nobody_saw_is_emailed_once_after_the_delay_with_its_tracking_link(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 2
    customer = UserFactory()
    order = processing_order(customer)
    notification = ship(order, carrier="ups", tracking_number="1Z999AA10123456784")

    offline_deliveries_run()
    assert smtp.received == []  # not due yet: an open page has two seconds to acknowledge it

    run_until(lambda: smtp.received)
    assert timezone.now() >= notification.created_at + timedelta(seconds=2)
    offline_deliveries_run()

    [email] = smtp.received
    assert email.rcpt_tos == [customer.email]
    assert email.message["Subject"] == f"Order {order.number} has shipped"
    link = "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    assert link in email.text() and f'href="{link}"' in email.html()
    delivery = email_of(notification)
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
    assert delivery.message_id == email.message["Message-ID"]
    assert delivery.claimed_until is None and delivery.finished_at is not None


def test_the_beat_task_sends_what_is_due(smtp, now_due):
    notification = ship(processing_order(UserFactory()))

    assert deliver_notifications.delay().get() == 1

    assert len(smtp.received) == 1 and email_of(notification).state == DeliveryState.SENT


@pytest.mark.parametrize("reached", ["delivered_at", "read_at"])
def test_a_notification_a_page_acknowledged_or_the_customer_read_is_not_emailed(smtp, now_due, reached):
    notification = ship(processing_order(UserFactory()))
    Notification.objects.filter(pk=notification.pk).update(**{reached: timezone.now()})

    run = offline_deliveries_run()

    assert smtp.received == [] and smtp.data_commands == 0
    assert (run.sent, run.skipped) == (0, 1)
    assert email_of(notification).state == DeliveryState.SKIPPED


def test_five_changes_within_the_window_make_one_digest(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 2
    customer = UserFactory()
    orders = [processing_order(customer) for _ in range(5)]
    notifications = [ship(order) for order in orders]

    run_until(lambda: smtp.received)
    offline_deliveries_run()

    [email] = smtp.received
    assert email.message["Subject"] == f"Order {orders[-1].number} has shipped (and 4 more updates)"
    for order in orders:
        assert order.number in email.text() and order.number in email.html()
    deliveries = [email_of(notification) for notification in notifications]
    assert {(d.state, d.message_id) for d in deliveries} == {(DeliveryState.SENT, email.message["Message-ID"])}


def test_a_due_email_takes_the_customers_later_ones_along_but_never_another_customers(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 60
    customer, other = UserFactory(), UserFactory()
    first, later = ship(processing_order(customer)), ship(processing_order(customer))
    others = ship(processing_order(other))
    NotificationDelivery.objects.filter(notification=first).update(due_at=timezone.now())

    offline_deliveries_run()

    [email] = smtp.received
    assert email.rcpt_tos == [customer.email] and "(and 1 more update)" in email.message["Subject"]
    assert email_of(later).state == DeliveryState.SENT
    assert email_of(others).state == DeliveryState.PENDING


def test_what_is_not_due_yet_is_not_sent_early_when_the_due_one_was_acknowledged(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 60
    customer = UserFactory()
    seen, fresh = ship(processing_order(customer)), ship(processing_order(customer))
    NotificationDelivery.objects.filter(notification=seen).update(due_at=timezone.now())
    Notification.objects.filter(pk=seen.pk).update(delivered_at=timezone.now())

    offline_deliveries_run()

    assert smtp.received == []
    assert (email_of(seen).state, email_of(fresh).state) == (DeliveryState.SKIPPED, DeliveryState.PENDING)


def test_an_email_turned_off_after_it_was_planned_is_skipped(smtp, now_due):
    customer = UserFactory()
    notification = ship(processing_order(customer))
    NotificationPreference.objects.create(user=customer, topic="order.shipped", channel=Channel.EMAIL, enabled=False)

    offline_deliveries_run()

    assert smtp.received == [] and email_of(notification).state == DeliveryState.SKIPPED


@pytest.mark.parametrize("reply", ["451 4.3.0 Mailbox busy, try later", "550 5.1.1 No such user"])
def test_an_smtp_server_refusing_is_retried_then_the_failure_is_recorded_and_the_order_is_unaffected(
    smtp, now_due, settings, reply
):
    settings.NOTIFICATION_DELIVERY_MAX_ATTEMPTS, settings.NOTIFICATION_DELIVERY_RETRY_DELAY = 3, 0
    smtp.refuse_with = reply
    order = processing_order(UserFactory())
    notification = ship(order)

    runs = [offline_deliveries_run() for _ in range(2)]  # no wait between retries here: the first run tries them all

    assert [run.failed for run in runs] == [3, 0]  # tried three times, then left alone
    assert smtp.data_commands == 3 and smtp.received == []
    delivery = email_of(notification)
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 3)
    assert reply.split()[0] in delivery.error and delivery.finished_at is not None
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED


def test_an_smtp_server_that_is_down_is_retried_after_a_doubling_wait(smtp, now_due, settings):
    settings.NOTIFICATION_DELIVERY_RETRY_DELAY = 60
    notification = ship(processing_order(UserFactory()))
    smtp.stop()  # nothing listens on its port any more

    waits = []
    for attempt in (1, 2, 3):
        before = timezone.now()
        offline_deliveries_run()
        delivery = email_of(notification)
        assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, attempt)
        assert "Connection" in delivery.error
        waits.append(delivery.next_attempt_at - before)
        offline_deliveries_run()  # waiting: not tried again before its time
        assert email_of(notification).attempts == attempt
        NotificationDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())

    for wait, expected in zip(waits, (60, 120, 240), strict=True):
        assert timedelta(seconds=expected) <= wait < timedelta(seconds=expected + 5)


def test_a_send_cut_short_goes_again_under_its_message_id_once_its_lease_is_over(smtp, now_due):
    """A run killed mid-send left its claim and its Message-ID; the next run after the lease sends it as it was."""
    notification = ship(processing_order(UserFactory()))
    NotificationDelivery.objects.filter(notification=notification).update(
        attempts=1, message_id="<killed-run@shop.test>", claimed_until=timezone.now() + timedelta(minutes=1)
    )
    offline_deliveries_run()
    assert smtp.received == []  # its lease still runs: the killed run might still be sending

    NotificationDelivery.objects.filter(notification=notification).update(claimed_until=timezone.now())
    offline_deliveries_run()

    [email] = smtp.received
    assert email.message["Message-ID"] == "<killed-run@shop.test>"
    assert (email_of(notification).state, email_of(notification).attempts) == (DeliveryState.SENT, 2)


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_one_email(smtp, now_due):
    """The beat's run and a redelivered task, say: SKIP LOCKED and the lease give each row to one of them."""
    customer = UserFactory()
    notifications = [ship(processing_order(customer)) for _ in range(3)]

    outcomes = run_concurrently(offline_deliveries_run, [(), ()])

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert sum(run.sent for run in outcomes) == 3
    assert smtp.data_commands == len(smtp.received) == 1
    assert {email_of(notification).state for notification in notifications} == {DeliveryState.SENT}


# --- Push: handed to notifications/push.py (the push channel's own module) -------------------------


@pytest.fixture
def pushed(push_keys, push_service):
    """Browser push on, with a real push service on 127.0.0.1 that the customers' browsers subscribed at."""
    return push_service


def subscribed_customer(service: LocalPushService):
    customer = UserFactory()
    keys = BrowserKeys.generate()
    push_subscription_save(user_id=customer.pk, subscription=push_subscription_parse(
        data=keys.subscription_json(service.endpoint(str(customer.pk)))))  # fmt: skip
    return customer


def push_of(notification: Notification) -> NotificationDelivery:
    return NotificationDelivery.objects.get(notification=notification, channel=Channel.PUSH)


def test_a_due_push_is_handed_to_the_push_channel_once_under_a_claim_and_marked_sent(smtp, now_due, pushed):
    customer = subscribed_customer(pushed)
    notification = ship(processing_order(customer))

    offline_deliveries_run()
    offline_deliveries_run()

    assert len(pushed.requests_to(str(customer.pk))) == 1
    assert (push_of(notification).state, push_of(notification).attempts) == (DeliveryState.SENT, 1)


def test_an_acknowledged_push_is_skipped_without_reaching_the_push_channel(smtp, now_due, pushed):
    notification = ship(processing_order(subscribed_customer(pushed)))
    Notification.objects.filter(pk=notification.pk).update(delivered_at=timezone.now())

    offline_deliveries_run()

    assert pushed.requests == [] and push_of(notification).state == DeliveryState.SKIPPED


def test_a_push_that_fails_is_retried_after_a_wait_and_the_email_goes_regardless(smtp, now_due, pushed, settings):
    settings.NOTIFICATION_DELIVERY_RETRY_DELAY = 60
    customer = subscribed_customer(pushed)
    pushed.answers[f"/push/{customer.pk}"] = 503
    notification = ship(processing_order(customer))

    offline_deliveries_run()

    delivery = push_of(notification)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert "HTTP 503" in delivery.error and delivery.next_attempt_at > timezone.now()
    assert len(smtp.received) == 1
