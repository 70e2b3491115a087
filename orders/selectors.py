"""Reads of orders that are more than a filter."""

from django.db.models import QuerySet

from orders.models import Order


def orders_of_customer(*, customer) -> QuerySet[Order]:
    """A customer's own orders, newest first; the only way views look orders up."""
    return Order.objects.filter(customer=customer).exclude(number=None)


def order_of_customer(*, customer, number: str) -> Order:
    """One of the customer's orders with its items and history; Order.DoesNotExist otherwise."""
    return orders_of_customer(customer=customer).prefetch_related("items", "events__actor").get(number=number)
