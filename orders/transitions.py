"""The order lifecycle: which status may follow which, and the one function that moves an order.

Everything that changes an order's status — checkout's payment task, the admin form,
scheduled tasks — goes through `order_transition`, so the rule, the history and the
notification can never be skipped; bulk admin actions and tasks touching thousands go
through its set-based twin, `orders.transitions_bulk.orders_transition_bulk`, with the same guarantees.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from django.db import transaction
from django.db.models import F

from notifications.services import notifications_batched
from orders.carriers import Tracking, TrackingInvalid, tracking_validate
from orders.models import Order, OrderEvent, OrderEventType, OrderStatus
from shop.models import Product

S = OrderStatus

logger = structlog.get_logger(__name__)

# The whole lifecycle in one table: status -> the statuses it may move to.
# Cancelled means stopped before shipping (stock goes back on the shelf);
# refunded means the money went back, at any point after payment.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.PROCESSING, S.CANCELLED, S.REFUNDED}),
    S.PROCESSING: frozenset({S.SHIPPED, S.CANCELLED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}


class OrderTransitionError(Exception):
    """Base for every refused status change; the message is fit to show to staff."""


class InvalidTransition(OrderTransitionError):
    def __init__(self, order: Order, to_status: str):
        self.order = order
        self.to_status = to_status
        super().__init__(
            f"Order {order.number} cannot go from {S(order.status).label.lower()} to {S(to_status).label.lower()}."
        )


class StaleOrder(OrderTransitionError):
    def __init__(self, order: Order):
        self.order = order
        super().__init__(
            f"Order {order.number} was changed by someone else since you loaded it "
            f"(now {S(order.status).label.lower()}). Reload and try again."
        )


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def next_statuses(status: str) -> list[str]:
    """The statuses an order in `status` may move to, in lifecycle order."""
    return [s for s in S.values if s in TRANSITIONS[status]]


def order_transition(
    *,
    order_id: int,
    to_status: str,
    actor=None,
    customer_message: str = "",
    internal_note: str = "",
    expected_version: int | None = None,
    expected_status: str | None = None,
    carrier: str = "",
    tracking_number: str = "",
) -> Order:
    """Move one order to `to_status`: lock, validate, record the event, save.

    Raises `InvalidTransition` for a move the table forbids, and `StaleOrder` when
    the order is no longer at `expected_version` or `expected_status` (a stale form,
    a redelivered task). The order's post_save signal records the customer's
    notification in this same transaction; it is published only after commit.
    `customer_message` reaches the customer (order page, notification); `internal_note` stays with staff.
    `carrier` and `tracking_number` go with the move to shipped only (`order_tracking_validate`).
    """
    tracking = order_tracking_validate(to_status=to_status, carrier=carrier, tracking_number=tracking_number)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        # Every line logged while the order changes (here, in its signals) names it; none after.
        with structlog.contextvars.bound_contextvars(order=order.number):
            if (expected_version is not None and order.version != expected_version) or (
                expected_status is not None and order.status != expected_status
            ):
                raise StaleOrder(order)
            if not can_transition(order.status, to_status):
                raise InvalidTransition(order, to_status)

            from_status = order.status
            # The event first, and on the instance: the post_save handler takes who made the change from it
            # (orders/signals.py; reading it back from the history was a query in every change's transaction).
            order.status_change_event = status_change_event(
                order, from_status, to_status, actor, customer_message, internal_note, tracking
            )
            order.status_change_event.save()
            order.status = to_status
            order.version += 1
            changed = ["status", "version", "updated_at"]
            if tracking is not None:
                order.carrier, order.tracking_number = tracking.carrier.code, tracking.number
                changed += ["carrier", "tracking_number"]
            order.save(update_fields=changed)
            if to_status == S.CANCELLED:
                _restock(order)
            logger.info("order_transitioned", from_status=from_status, to_status=to_status)
    return order


def status_change_event(
    order: Order,
    from_status: str,
    to_status: str,
    actor,
    customer_message: str,
    internal_note: str,
    tracking: Tracking | None,
) -> OrderEvent:
    """The history entry of one status change, unsaved: `order_transition` saves it, a bulk change inserts many."""
    return OrderEvent(
        order=order,
        type=OrderEventType.STATUS_CHANGED,
        old_status=from_status,
        new_status=to_status,
        actor=actor,
        customer_message=customer_message,
        internal_note=internal_note,
        carrier=tracking.carrier.code if tracking else "",
        tracking_number=tracking.number if tracking else "",
    )


def order_tracking_validate(*, to_status: str, carrier: str, tracking_number: str) -> Tracking | None:
    """The tracking staff gave with a move to `to_status`, checked; `TrackingInvalid` if wrong or not shipping."""
    tracking = tracking_validate(carrier=carrier, number=tracking_number)
    if tracking is not None and to_status != S.SHIPPED:
        raise TrackingInvalid("A tracking number is given when the order is marked shipped.", field="tracking_number")
    return tracking


def _restock(order: Order) -> None:
    """Put a cancelled order's items back in stock."""
    for item in order.items.all():
        Product.objects.filter(pk=item.product_id).update(stock=F("stock") + item.quantity)


@dataclass
class BulkTransitionResult:
    changed: list[Order] = field(default_factory=list)
    # (order number, reason) for every order left as it was.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def orders_transition_each(
    *,
    order_ids,
    to_status: str,
    actor=None,
    customer_message: str = "",
    internal_note: str = "",
    tracking: Mapping[int, Tracking] | None = None,
) -> BulkTransitionResult:
    """Move many orders to `to_status`, each through `order_transition`: the per-order reference path.

    `orders_transition_bulk` (orders/transitions_bulk.py) does the same set-based and is what the shop calls;
    this one stays as what it is tested against and benchmarked beside (docs/performance.md, "Bulk actions").
    Each order changes in its own savepoint, so one refused order is reported and
    skipped without undoing the others; their notifications go out in one batch
    after commit. `tracking` gives some of them (by id) their shipment's tracking.
    """
    tracking = tracking or {}
    result = BulkTransitionResult()
    with notifications_batched(), transaction.atomic():
        for order_id in sorted(order_ids):
            try:
                with transaction.atomic():
                    order = order_transition(
                        order_id=order_id,
                        to_status=to_status,
                        actor=actor,
                        customer_message=customer_message,
                        internal_note=internal_note,
                        **_tracking_arguments(tracking.get(order_id)),
                    )
            except OrderTransitionError as error:
                result.skipped.append((error.order.number, str(error)))
            else:
                result.changed.append(order)
    return result


def _tracking_arguments(tracking: Tracking | None) -> dict[str, str]:
    return {"carrier": tracking.carrier.code, "tracking_number": tracking.number} if tracking else {}
