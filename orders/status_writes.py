"""The one rule about writing `Order.status`: only `orders.transitions.order_transition` changes it, and for many
orders at once its set-based twin, `orders.transitions_bulk.orders_transition_bulk` (the same lock, table, events and
notifications, written with raw SQL that these guards do not see).

Any other write of the status — `save()`, `QuerySet.update()`, `bulk_update()`, `create()` or `bulk_create()` in a
later status — is refused before anything is written, so no order can change without the row lock, the transition
table, its `OrderEvent` and its notification in one transaction. Any other save of a stored order writes neither
the status nor the version, so an instance loaded before a transition cannot write the old ones back. loaddata's
raw saves are stored as they come: a fixture is a state to restore, not a change anyone made.
"""

from collections.abc import Iterable, Set

from orders.models import Order, OrderStatus
from orders.transitions import OrderTransitionError

# The status checkout creates an order in (orders/services.py); every later one is reached by a transition.
INITIAL_STATUS = OrderStatus.PENDING_PAYMENT
# The fields only order_transition writes: any other save of a stored order leaves them as the row has them.
TRANSITION_FIELDS = frozenset({"status", "version"})


class StatusWriteRefused(OrderTransitionError):
    """A write of an order's status that did not come from `order_transition`; nothing was written."""

    def __init__(self, write: str):
        super().__init__(
            f"{write} would change an order's status without its history and notification: statuses change only "
            "through orders.transitions.order_transition. Nothing was written."
        )


def order_save_fields(
    order: Order, *, update_fields: Iterable[str] | None, force_insert: bool | tuple
) -> Set[str] | None:
    """The fields a save of `order` writes: what it asks for, less the status and version unless it is a new row
    or `order_transition`'s own save.

    An instance loaded before a transition still holds the old status and version; saving its other fields must
    not write those back over the transition's. An empty result means there is nothing to write.
    """
    if force_insert or _is_transition_save(order):
        return update_fields
    if order._state.adding:
        if order.pk is None:
            return update_fields
        # Built by hand with an existing order's pk, save() overwrites that row: it is a save of that row.
        stored = Order._base_manager.filter(pk=order.pk).values_list("status", flat=True).first()
        if stored is None:
            return update_fields
        order._loaded_status = stored
    if update_fields is None:
        deferred = order.get_deferred_fields()
        update_fields = {
            field.attname
            for field in order._meta.concrete_fields
            if not field.primary_key and not field.generated and field.attname not in deferred
        }
    fields = frozenset(update_fields) - TRANSITION_FIELDS
    if update_fields and not fields:
        # Django skips an empty save and its signals: refuse a status changed in memory here, as pre_save would.
        order_save_refuse_status_write(order)
    return fields


def order_save_refuse_status_write(order: Order) -> None:
    """Refuse saving `order` with a status other than the stored one, unless `order_transition` set it."""
    if order._state.adding and order.loaded_status is None:
        # Built by hand with an existing order's pk, save() overwrites that row: compare with what is stored.
        stored = None
        if order.pk is not None:
            stored = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        if stored is None:
            _refuse_unless_initial(order, write="Creating an order")
            return
        order._loaded_status = stored
    if order.status == order.loaded_status:
        return
    if _is_transition_save(order):
        return
    raise StatusWriteRefused(f"Saving order {order} as {order.status} (loaded as {order.loaded_status})")


def _is_transition_save(order: Order) -> bool:
    """Whether this save is order_transition's: it wrote this event for it, and post_save takes it off after one."""
    event = order.__dict__.get("status_change_event")
    return event is not None and event.pk is not None and event.new_status == order.status


def orders_write_refuse_status(fields: Iterable[str] | None, *, write: str) -> None:
    """Refuse a write of many orders at once (update, bulk_update, an upsert) that names the status."""
    if fields is not None and "status" in fields:
        raise StatusWriteRefused(write)


def orders_create_refuse_status(orders: Iterable[Order]) -> None:
    """Refuse creating orders in bulk in any status but the one checkout creates them in."""
    for order in orders:
        _refuse_unless_initial(order, write="bulk_create() of an order")


def _refuse_unless_initial(order: Order, *, write: str) -> None:
    """A new order starts where checkout starts it; any later status is reached by a transition."""
    if order.status != INITIAL_STATUS:
        raise StatusWriteRefused(f"{write} as {order.status}")
