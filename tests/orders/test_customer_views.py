"""Customers see their own orders and timelines, and nobody else's."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from notifications.models import Notification
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_my_orders_lists_only_my_orders(customer_client, customer, other_customer):
    mine, theirs = place_order(customer=customer), place_order(customer=other_customer)
    response = customer_client.get(reverse("orders:list"))
    assert list(response.context["orders"]) == [mine]
    assert theirs.number not in response.content.decode()


def test_order_page_shows_items_and_status_timeline(customer_client, customer):
    order = place_order(customer=customer, status=OrderStatus.SHIPPED)
    response = customer_client.get(order.get_absolute_url())
    content = response.content.decode()
    assert response.status_code == 200
    assert order.items.get().product_name in content
    for label in ("Pending payment", "Paid", "Processing", "Shipped"):
        assert label in content


def test_another_customers_order_is_404(customer_client, other_customer):
    theirs = place_order(customer=other_customer)
    assert customer_client.get(theirs.get_absolute_url()).status_code == 404


def test_unknown_order_number_is_404(customer_client):
    assert customer_client.get(reverse("orders:detail", args=["SO-999999"])).status_code == 404


@pytest.mark.parametrize("url", [reverse("orders:list"), reverse("orders:detail", args=["SO-000001"])])
def test_order_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_order_pages_render_the_seq_read_before_the_order(customer_client, customer):
    order = place_order(customer=customer, status=OrderStatus.PAID)
    for url in (order.get_absolute_url(), reverse("orders:list"), reverse("notifications:list")):
        assert customer_client.get(url).context["live_last_seq"] == 1


def test_a_shipped_order_page_links_to_the_carriers_tracking_page(customer_client, customer):
    order = place_order(
        customer=customer, status=OrderStatus.DELIVERED, carrier="colissimo", tracking_number="6A12345678901"
    )

    content = customer_client.get(order.get_absolute_url()).content.decode()

    assert (
        '<dd id="order-tracking"><span class="carrier">La Poste / Colissimo</span> <a class="tracking-link" '
        'href="https://www.laposte.fr/outils/suivre-vos-envois?code=6A12345678901" target="_blank" '
        'rel="noopener noreferrer">6A12345678901</a></dd>'
    ) in content


def test_an_order_without_tracking_keeps_the_tracking_entry_hidden_and_empty(customer_client, customer):
    order = place_order(customer=customer, status=OrderStatus.SHIPPED)

    content = customer_client.get(order.get_absolute_url()).content.decode()

    assert '<dt id="order-tracking-term" hidden>Tracking</dt>' in content
    assert '<dd id="order-tracking" hidden></dd>' in content


def test_a_carrier_label_with_markup_is_text_on_the_order_page(customer_client, customer, markup_carrier):
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="probe", tracking_number="PROBE1")

    content = customer_client.get(order.get_absolute_url()).content.decode()

    assert f'<span class="carrier">{escape(markup_carrier.label)}</span>' in content
    assert markup_carrier.label not in content


def cancel(client, order):
    return client.post(reverse("orders:cancel", args=[order.number]))


def test_a_customer_cancels_an_order_awaiting_payment_and_its_stock_goes_back(customer_client, customer):
    order = place_order(customer=customer, quantity=2)
    product = order.items.get().product
    stock_before = product.stock

    response = cancel(customer_client, order)

    assert response.status_code == 302 and response.url == order.get_absolute_url()
    order.refresh_from_db()
    product.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    event = order.events.last()
    assert (event.old_status, event.new_status, event.actor) == (
        OrderStatus.PENDING_PAYMENT,
        OrderStatus.CANCELLED,
        customer,
    )
    assert product.stock == stock_before + 2
    notification = Notification.objects.get(recipient=customer)
    assert notification.payload["order"]["status"] == OrderStatus.CANCELLED
    page = customer_client.get(order.get_absolute_url()).content.decode()
    assert f"Order {order.number} is cancelled. Nothing will be charged." in page
    assert "Cancel this order" not in page


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.CANCELLED])
def test_an_order_past_payment_cannot_be_cancelled_by_its_customer_and_nothing_is_written(
    customer_client, customer, status
):
    order = place_order(customer=customer, status=status)
    assert "Cancel this order" not in customer_client.get(order.get_absolute_url()).content.decode()
    events, notifications = order.events.count(), Notification.objects.count()

    response = cancel(customer_client, order)  # a page rendered before the payment, say

    order.refresh_from_db()
    assert order.status == status
    assert (order.events.count(), Notification.objects.count()) == (events, notifications)
    page = customer_client.get(response.url).content.decode()
    label = OrderStatus(status).label.lower()
    assert f"Order {order.number} is {label} now, so it can no longer be cancelled here. Contact us instead." in page


def test_the_order_page_offers_cancel_while_the_order_awaits_payment(customer_client, customer):
    order = place_order(customer=customer)
    page = customer_client.get(order.get_absolute_url()).content.decode()
    assert f'action="{reverse("orders:cancel", args=[order.number])}"' in page


def test_cancelling_another_customers_order_is_404_and_changes_nothing(customer_client, other_customer):
    theirs = place_order(customer=other_customer)
    assert cancel(customer_client, theirs).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == OrderStatus.PENDING_PAYMENT


def test_cancel_is_a_post_only(customer_client, customer):
    order = place_order(customer=customer)
    assert customer_client.get(reverse("orders:cancel", args=[order.number])).status_code == 405
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT
