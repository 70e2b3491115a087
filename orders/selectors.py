"""Reads of orders that are more than a filter."""

from datetime import datetime

from django.db.models import QuerySet

from notifications.models import Notification
from orders.models import Order
from orders.notifications import ORDER_STATUS_CHANGED


def orders_of_customer(*, customer) -> QuerySet[Order]:
    """A customer's own orders, newest first; the only way views look orders up."""
    return Order.objects.filter(customer=customer).exclude(number=None)


def order_of_customer(*, customer, number: str) -> Order:
    """One of the customer's orders with its address, items and history; Order.DoesNotExist otherwise."""
    return (
        orders_of_customer(customer=customer)
        .select_related("shipping_address")
        .prefetch_related("items", "events__actor")
        .get(number=number)
    )


def order_status_changes_seen(*, order: Order) -> dict[tuple[str, str], datetime]:
    """When the customer's page first showed each of the order's status changes, in one query.

    Keyed by (old status, new status), as the history's events are: the lifecycle enters each status at most
    once, so the pair names one change. A change whose notification no page acknowledged is left out.
    """
    seen = (
        Notification.objects.filter(
            recipient_id=order.customer_id,
            kind=ORDER_STATUS_CHANGED.name,
            payload__order__id=order.pk,
            delivered_at__isnull=False,
        )
        .order_by("seq")
        .values_list("payload__order__previous_status", "payload__order__status", "delivered_at")
    )
    return {(old or "", new): delivered_at for old, new, delivered_at in seen}
