"""Placing orders: prices from the catalog, stock taken atomically, bad carts refused whole."""

from decimal import Decimal

import pytest
from django.db import transaction

from notifications.groups import user_group
from orders.models import Order, OrderEventType, OrderStatus
from orders.services import CheckoutError, order_place
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_order_snapshots_prices_and_totals(customer):
    cups = ProductFactory(price=Decimal("24.00"), stock=5)
    beans = ProductFactory(price=Decimal("14.50"), stock=5)

    order = order_place(customer=customer, quantities={cups.pk: 2, beans.pk: 1}, note="Ring twice")

    assert order.number == f"SO-{order.pk:06d}"
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.total == Decimal("62.50")
    assert [(i.product_name, i.unit_price, i.quantity, i.line_total) for i in order.items.order_by("unit_price")] == [
        (beans.name, Decimal("14.50"), 1, Decimal("14.50")),
        (cups.name, Decimal("24.00"), 2, Decimal("48.00")),
    ]
    assert [(e.type, e.new_status) for e in order.events.all()] == [
        (OrderEventType.PLACED, OrderStatus.PENDING_PAYMENT)
    ]


def test_price_change_after_checkout_does_not_touch_the_order(customer, product):
    order = order_place(customer=customer, quantities={product.pk: 1})
    product.price = Decimal("999.00")
    product.save()
    assert order.items.get().unit_price == Decimal("19.90")


def test_checkout_takes_the_stock(customer):
    kettle = ProductFactory(stock=3)
    order_place(customer=customer, quantities={kettle.pk: 2})
    kettle.refresh_from_db()
    assert kettle.stock == 1


@pytest.mark.parametrize(
    ("quantities", "message"),
    [
        ({}, "Your cart is empty."),
        ({"product": 0}, "at least 1"),
        ({"product": -3}, "at least 1"),
        ({"product": 11}, "Only 10 of"),
        ({"product": 101}, "At most 100"),
        ({"unknown": 1}, "no longer available"),
        ({"inactive": 1}, "no longer available"),
    ],
)
def test_bad_cart_is_refused_and_writes_nothing(customer, product, quantities, message):
    inactive = ProductFactory(is_active=False)
    ids = {"product": product.pk, "unknown": 999_999, "inactive": inactive.pk}
    with pytest.raises(CheckoutError, match=message):
        order_place(customer=customer, quantities={ids[key]: qty for key, qty in quantities.items()})
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 10


def test_one_bad_line_refuses_the_whole_order(customer):
    plenty, scarce = ProductFactory(stock=50), ProductFactory(stock=1)
    with pytest.raises(CheckoutError, match="Only 1 of"):
        order_place(customer=customer, quantities={plenty.pk: 5, scarce.pk: 2})
    plenty.refresh_from_db()
    assert plenty.stock == 50
    assert not Order.objects.exists()


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_checkouts_of_the_last_item_cannot_both_succeed():
    last = ProductFactory(stock=1)
    buyers = [UserFactory(), UserFactory()]

    outcomes = run_concurrently(
        lambda customer: order_place(customer=customer, quantities={last.pk: 1}), [(b,) for b in buyers]
    )

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["CheckoutError", "Order"]
    last.refresh_from_db()
    assert last.stock == 0
    assert Order.objects.count() == 1


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_checkouts_of_overlapping_carts_do_not_deadlock():
    a, b = ProductFactory(stock=20), ProductFactory(stock=20)
    # Half the buyers list the products one way round, half the other.
    carts = [({a.pk: 1, b.pk: 1} if index % 2 else {b.pk: 1, a.pk: 1}) for index in range(6)]

    outcomes = run_concurrently(
        lambda quantities: order_place(customer=UserFactory(), quantities=quantities), [(cart,) for cart in carts]
    )

    assert all(isinstance(outcome, Order) for outcome in outcomes), outcomes
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.stock, b.stock, Order.objects.count()) == (14, 14, 6)


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_a_placed_order_is_announced_to_the_customers_sockets_after_commit_only(listen):
    customer, product = UserFactory(), ProductFactory()
    customer_group = listen(user_group(customer.pk))

    with transaction.atomic():
        order = order_place(customer=customer, quantities={product.pk: 1})
        assert customer_group.receive_nothing(timeout=0.3)  # not before it commits

    event = customer_group.receive()
    assert event == {
        "type": "frame.forward",
        "frame": {"type": "order_placed", "order": {"id": order.pk, "number": order.number}},
    }


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_a_refused_or_rolled_back_checkout_announces_nothing(listen):
    customer, product = UserFactory(), ProductFactory(stock=1)
    customer_group = listen(user_group(customer.pk))

    with pytest.raises(CheckoutError):
        order_place(customer=customer, quantities={product.pk: 2})
    with pytest.raises(RuntimeError), transaction.atomic():
        order_place(customer=customer, quantities={product.pk: 1})
        raise RuntimeError("rolled back")

    assert customer_group.receive_nothing(timeout=0.5)
    assert not Order.objects.exists()
