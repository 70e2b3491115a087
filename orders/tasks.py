"""Celery tasks for orders. Thin: take an id, call a service, retry on database trouble.

Every task is safe to run twice (late acks mean a killed worker's task comes back):
`expected_status` turns a repeat into a no-op instead of a second change.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.transitions import OrderTransitionError, order_transition
from orders.transitions_bulk import orders_transition_bulk
from shop.task_sends import task_send_on_commit

logger = logging.getLogger(__name__)

# Database hiccups (a restart, a dropped connection) are worth retrying with backoff.
RETRYING = {
    "acks_late": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}

# The system's notes follow one rule: what tells the customer something the new status does not (why their order
# was cancelled) is a customer message; what only records where a change came from is an internal note.

# The demo's fulfilment path: each step schedules the next.
FULFILMENT_NEXT = {
    OrderStatus.PAID: OrderStatus.PROCESSING,
    OrderStatus.PROCESSING: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
}


def _advance(*, order_id: int, from_status: str, to_status: str, internal_note: str) -> bool:
    """Move the order if it is still at `from_status`; a repeat or an overtaken order is a no-op."""
    try:
        order_transition(
            order_id=order_id, to_status=to_status, expected_status=from_status, internal_note=internal_note
        )
    except Order.DoesNotExist:
        logger.warning("Order %s no longer exists; nothing to do", order_id)
        return False
    except OrderTransitionError as error:
        logger.info("Skipped: %s", error)
        return False
    return True


@shared_task(**RETRYING)
def confirm_payment(order_id: int) -> bool:
    """The (simulated) payment provider confirms payment: pending payment → paid."""
    paid = _advance(
        order_id=order_id,
        from_status=OrderStatus.PENDING_PAYMENT,
        to_status=OrderStatus.PAID,
        internal_note="Payment confirmed",
    )
    if paid and settings.SIMULATE_ORDER_PROGRESS:
        schedule_fulfilment_step(order_id=order_id, from_status=OrderStatus.PAID)
    return paid


@shared_task(**RETRYING)
def advance_fulfilment(order_id: int, from_status: str) -> bool:
    """One step of the demo warehouse: paid → processing → shipped → delivered."""
    to_status = FULFILMENT_NEXT[from_status]
    moved = _advance(order_id=order_id, from_status=from_status, to_status=to_status, internal_note="Warehouse update")
    if moved and settings.SIMULATE_ORDER_PROGRESS and to_status in FULFILMENT_NEXT:
        schedule_fulfilment_step(order_id=order_id, from_status=to_status)
    return moved


def schedule_fulfilment_step(*, order_id: int, from_status: str) -> None:
    task_send_on_commit(advance_fulfilment, args=(order_id, from_status), countdown=settings.FULFILMENT_STEP_DELAY)


def schedule_payment_confirmation(*, order_id: int) -> None:
    """After checkout commits, have the simulated provider confirm payment a little later."""
    task_send_on_commit(confirm_payment, args=(order_id,), countdown=settings.PAYMENT_CONFIRMATION_DELAY)


@shared_task(**RETRYING)
def cancel_unpaid_orders(chunk_size: int = 500) -> int:
    """Cancel orders left unpaid for longer than UNPAID_ORDER_TIMEOUT_MINUTES; returns how many."""
    timeout = settings.UNPAID_ORDER_TIMEOUT_MINUTES
    cutoff = timezone.now() - timedelta(minutes=timeout)
    cancelled = 0
    while True:
        ids = list(
            Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return cancelled
        result = orders_transition_bulk(
            order_ids=ids, to_status=OrderStatus.CANCELLED, customer_message=f"Not paid within {timeout} minutes"
        )
        cancelled += len(result.changed)
        if not result.changed:
            return cancelled  # everything left was overtaken meanwhile
