"""`manage.py seed_demo` fills the shop once, and running it again changes nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from notifications.models import DeliveryState, NotificationDelivery
from orders.models import Order, OrderEvent, OrderStatus
from shop.models import Product
from support.models import Message
from support.selectors import inbox

pytestmark = pytest.mark.django_db


def counts():
    return (
        get_user_model().objects.count(),
        Product.objects.count(),
        Order.objects.count(),
        OrderEvent.objects.count(),
    )


def test_seed_demo_creates_staff_customers_catalog_and_orders(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    users = get_user_model().objects
    assert users.get(username="staff").is_staff
    assert {"alice", "bob", "carol"} <= set(users.values_list("username", flat=True))
    assert Product.objects.count() == 8
    assert Order.objects.filter(customer__username="alice").count() == 3
    assert "password" in capsys.readouterr().out


def test_seed_demo_ships_its_shipped_and_delivered_orders_with_tracking_and_the_others_without(settings):
    settings.DEBUG = True
    call_command("seed_demo")

    tracked = {order.status: order.tracking for order in Order.objects.all()}
    for status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        assert tracked[status] is not None and tracked[status].url.startswith("https://")
    for status in (OrderStatus.PAID, OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED):
        assert tracked[status] is None


def test_seed_demo_emails_nobody_about_the_orders_it_made(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    deliveries = NotificationDelivery.objects.filter(notification__recipient__username="alice")
    assert deliveries.exists() and set(deliveries.values_list("state", flat=True)) == {DeliveryState.SKIPPED}


def test_seed_demo_is_idempotent(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert counts() == (0, 0, 0, 0)


def test_seed_demo_leaves_a_conversation_awaiting_staffs_reply_on_the_first_customers_delivered_order(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")  # again: nothing more

    [row] = inbox(awaiting_only=True, max_rows=10).rows
    order = Order.objects.get(pk=row.order_id)
    assert (order.customer.username, order.status) == ("alice", OrderStatus.DELIVERED)
    assert row.last_message.author == order.customer
    assert list(Message.objects.values_list("internal", flat=True).order_by("seq")) == [False, True]
