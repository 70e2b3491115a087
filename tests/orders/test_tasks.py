"""Celery tasks: thin, idempotent under redelivery, enqueued only after commit."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from notifications.models import Notification
from notifications.tasks import prune_notifications, republish_notifications
from orders.models import Order, OrderStatus
from orders.services import order_place
from orders.tasks import advance_fulfilment, cancel_unpaid_orders, confirm_payment
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_payment_confirmation_marks_the_order_paid_with_one_notification(customer):
    order = place_order(customer=customer)
    assert confirm_payment.delay(order.pk).get() is True
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.events.last().actor is None  # the system, not a person
    assert customer.notifications.count() == 1


def test_redelivered_payment_confirmation_changes_nothing_more(customer):
    order = place_order(customer=customer)
    confirm_payment.delay(order.pk)
    assert confirm_payment.delay(order.pk).get() is False
    order.refresh_from_db()
    assert (order.status, order.version, customer.notifications.count()) == (OrderStatus.PAID, 2, 1)


def test_payment_confirmation_for_a_cancelled_order_is_a_no_op(customer):
    order = place_order(customer=customer, status=OrderStatus.CANCELLED)
    assert confirm_payment.delay(order.pk).get() is False
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_payment_confirmation_for_a_missing_order_is_a_no_op():
    assert confirm_payment.delay(999_999).get() is False


def test_checkout_enqueues_payment_confirmation_only_after_commit(
    customer, product, settings, django_capture_on_commit_callbacks
):
    settings.SIMULATE_ORDER_PROGRESS = True
    settings.FULFILMENT_STEP_DELAY = 0

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            order_place(customer=customer, quantities={product.pk: 1})
            raise RuntimeError("checkout rolled back")
    assert not Order.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        order = order_place(customer=customer, quantities={product.pk: 1})
        order.refresh_from_db()
        assert order.status == OrderStatus.PENDING_PAYMENT  # nothing ran before commit

    # Eager mode ignores countdowns: the whole demo path ran, one step after another.
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED
    statuses = list(customer.notifications.values_list("payload__order__status", flat=True))
    assert statuses == ["paid", "processing", "shipped", "delivered"]


def test_fulfilment_step_only_moves_an_order_still_at_the_expected_status(customer):
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    assert advance_fulfilment.delay(order.pk, OrderStatus.PAID).get() is False
    assert advance_fulfilment.delay(order.pk, OrderStatus.PROCESSING).get() is True
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED


def test_unpaid_orders_past_the_timeout_are_cancelled_once(settings):
    settings.UNPAID_ORDER_TIMEOUT_MINUTES = 30
    stale = [place_order() for _ in range(3)]
    fresh = place_order()
    paid_long_ago = place_order(status=OrderStatus.PAID)
    Order.objects.filter(pk__in=[o.pk for o in [*stale, paid_long_ago]]).update(
        created_at=timezone.now() - timedelta(minutes=31)
    )

    assert cancel_unpaid_orders.delay(chunk_size=2).get() == 3
    assert cancel_unpaid_orders.delay().get() == 0

    assert set(Order.objects.filter(status=OrderStatus.CANCELLED).values_list("pk", flat=True)) == {o.pk for o in stale}
    for order in stale:
        assert order.customer.notifications.get().payload["order"]["status"] == "cancelled"
        assert (order.events.last().customer_message, order.events.last().internal_note) == (
            "Not paid within 30 minutes",
            "",
        )
    fresh.refresh_from_db()
    assert fresh.status == OrderStatus.PENDING_PAYMENT


def test_tasks_ack_late_and_retry_database_errors_with_backoff():
    for task in (confirm_payment, advance_fulfilment, cancel_unpaid_orders):
        assert task.acks_late is True
        assert DatabaseError in task.autoretry_for
        assert task.retry_backoff and task.max_retries


def test_republish_task_publishes_abandoned_notifications(customer):
    place_order(customer=customer, status=OrderStatus.PAID)
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert republish_notifications.delay().get() == 1
    assert republish_notifications.delay().get() == 0


def test_prune_task_drops_notifications_past_retention(customer, settings):
    settings.NOTIFICATION_RETENTION_DAYS = 30
    place_order(customer=customer, status=OrderStatus.PROCESSING)
    Notification.objects.filter(seq=1).update(created_at=timezone.now() - timedelta(days=31))
    assert prune_notifications.delay().get() == 1
    assert list(customer.notifications.values_list("seq", flat=True)) == [2]


def test_fulfilment_step_schedules_the_next_only_while_the_demo_simulation_is_on(
    customer, settings, django_capture_on_commit_callbacks
):
    settings.SIMULATE_ORDER_PROGRESS = False
    order = place_order(customer=customer, status=OrderStatus.PAID)
    with django_capture_on_commit_callbacks(execute=True):
        advance_fulfilment.delay(order.pk, OrderStatus.PAID)
    # Eager mode would have run a scheduled next step at once.
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING
