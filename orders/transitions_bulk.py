"""Many orders to one status at once, set-based: the admin's bulk actions and the tasks that touch thousands.

The second and only other path that writes `Order.status` (orders/status_writes.py), with `order_transition`'s
guarantees per order: the transition table, one history event and one notification per changed order, each
customer's seqs gapless, published only after commit, and a refused order reported and left as it was. A few
statements per chunk however many orders it holds, instead of a savepoint and five statements per order
(docs/performance.md, "Bulk actions").
"""

from collections.abc import Iterable, Mapping

import structlog
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from orders.carriers import Tracking, TrackingInvalid
from orders.models import Order, OrderEvent, OrderItem, OrderStatus
from orders.notifications import notifications_record_order_status_changes
from orders.transitions import BulkTransitionResult, InvalidTransition, can_transition, status_change_event
from shop.models import Product

logger = structlog.get_logger("orders.transitions")

# Orders changed per transaction: each chunk's rows (orders, then their customers' counters) stay locked only
# while it is written, a fraction of a second, so single changes of the same orders and customers wait at most
# that long, and the first customers hear while later chunks are written. A refusal is per order either way.
BULK_CHUNK_SIZE = 1000


def orders_transition_bulk(
    *,
    order_ids: Iterable[int],
    to_status: str,
    actor=None,
    customer_message: str = "",
    internal_note: str = "",
    tracking: Mapping[int, Tracking] | None = None,
    chunk_size: int = BULK_CHUNK_SIZE,
) -> BulkTransitionResult:
    """Move many orders to `to_status`, in id order and chunks of `chunk_size`, each chunk in one transaction.

    An order the table does not let go to `to_status` (or that no longer exists) is reported in `skipped` and
    left as it was; the others change. Each chunk's notifications are published once it commits; inside the
    caller's transaction the chunks commit (and publish) with it. `tracking` gives some of them (by id) their
    shipment's tracking.
    """
    tracking = dict(tracking or {})
    if tracking and to_status != OrderStatus.SHIPPED:
        raise TrackingInvalid("A tracking number is given when the order is marked shipped.", field="tracking_number")
    ids = sorted(set(order_ids))
    result = BulkTransitionResult()
    for start in range(0, len(ids), chunk_size):
        _chunk_transition(
            ids[start : start + chunk_size],
            to_status=to_status,
            actor=actor,
            customer_message=customer_message,
            internal_note=internal_note,
            tracking=tracking,
            result=result,
        )
    return result


def _chunk_transition(
    ids: list[int],
    *,
    to_status: str,
    actor,
    customer_message: str,
    internal_note: str,
    tracking: dict[int, Tracking],
    result: BulkTransitionResult,
) -> None:
    """One chunk: one locked read in id order, the refusals, then one statement per table for the rest."""
    with transaction.atomic():
        # In id order, as every bulk change locks them, so two bulk changes never deadlock on their orders.
        orders = list(Order.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        found = {order.pk for order in orders}
        changing: list[tuple[Order, str]] = []
        for order in orders:
            if can_transition(order.status, to_status):
                changing.append((order, order.status))
            else:
                result.skipped.append((order.number, str(InvalidTransition(order, to_status))))
        for missing in (order_id for order_id in ids if order_id not in found):
            result.skipped.append((f"#{missing}", f"Order #{missing} no longer exists."))
        if not changing:
            return
        _orders_status_write([order for order, _ in changing], to_status=to_status, tracking=tracking)
        OrderEvent.objects.bulk_create(
            status_change_event(
                order, from_status, to_status, actor, customer_message, internal_note, tracking.get(order.pk)
            )
            for order, from_status in changing
        )
        if to_status == OrderStatus.CANCELLED:
            _orders_restock([order.pk for order, _ in changing])
        # Only the message meant for the customers: the internal note stays in the history.
        notifications_record_order_status_changes(changes=changing, actor=actor, customer_message=customer_message)
        for order, from_status in changing:
            logger.info("order_transitioned", order=order.number, from_status=from_status, to_status=to_status)
        result.changed += [order for order, _ in changing]


def _orders_status_write(orders: list[Order], *, to_status: str, tracking: dict[int, Tracking]) -> None:
    """The one UPDATE of the changing orders' status and version (and tracking, where given), and the same in memory.

    Raw SQL: the orders' queryset refuses any write of the status (orders/status_writes.py), and this path is,
    beside `order_transition`, the one that may.
    """
    updated_at = timezone.now()
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS changing SET status = %s, version = changing.version + 1, updated_at = %s, "  # ours
            "carrier = CASE WHEN given.carrier = '' THEN changing.carrier ELSE given.carrier END, "
            "tracking_number = CASE WHEN given.carrier = '' THEN changing.tracking_number ELSE given.number END "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS given (id, carrier, number) "
            "WHERE changing.id = given.id",
            [
                to_status,
                updated_at,
                [order.pk for order in orders],
                [tracking[order.pk].carrier.code if order.pk in tracking else "" for order in orders],
                [tracking[order.pk].number if order.pk in tracking else "" for order in orders],
            ],
        )
    for order in orders:
        order.status, order.version, order.updated_at = to_status, order.version + 1, updated_at
        # What is stored now is what the instance's next save compares against (as after order_transition).
        order._loaded_status = to_status
        if order.pk in tracking:
            order.carrier, order.tracking_number = tracking[order.pk].carrier.code, tracking[order.pk].number


def _orders_restock(order_ids: list[int]) -> None:
    """Put the cancelled orders' items back in stock: one locked read of their products in id order, one UPDATE."""
    quantities = dict(
        OrderItem.objects.filter(order_id__in=order_ids)
        .order_by("product_id")
        .values("product_id")
        .annotate(quantity=Sum("quantity"))
        .values_list("product_id", "quantity")
    )
    if not quantities:
        return
    # In id order, as checkout locks them (orders/services.py), so the two never deadlock.
    products = list(
        Product.objects.select_for_update().filter(pk__in=quantities).order_by("pk").values_list("pk", flat=True)
    )
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS product SET stock = product.stock + returned.quantity "  # the table name is ours
            "FROM unnest(%s::bigint[], %s::bigint[]) AS returned (id, quantity) WHERE product.id = returned.id",
            [products, [quantities[product] for product in products]],
        )
