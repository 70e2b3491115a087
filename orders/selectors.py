"""Reads of orders that are more than a filter."""

from django.db.models import QuerySet

from orders.models import Order, OrderEvent


def orders_of_customer(*, customer) -> QuerySet[Order]:
    """A customer's own orders, newest first; the only way views look orders up."""
    return Order.objects.filter(customer=customer).exclude(number=None)


def order_of_customer(*, customer, number: str) -> Order:
    """One of the customer's orders with its items and history; Order.DoesNotExist otherwise."""
    return (
        orders_of_customer(customer=customer)
        .prefetch_related("items", "events__actor")
        .get(number=number)
    )


def order_change_actor(order: Order, *, event: OrderEvent | None = None):
    """Who made the order's latest status change (None for the system).

    From `event`, the history entry `order_transition` wrote for this change, when given; for a
    status saved any other way, from the order's history.
    """
    if event is not None and event.new_status == order.status:
        return event.actor
    event = order.events.filter(new_status=order.status).select_related("actor").order_by("-pk").first()
    return event.actor if event else None
