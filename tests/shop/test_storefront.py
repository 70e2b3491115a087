"""The storefront: catalog, session cart and checkout over HTTP, with every bad input refused."""

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import Order
from tests.factories import CHECKOUT_ADDRESS, ProductFactory

pytestmark = pytest.mark.django_db


def checkout(client, **fields):
    """Post checkout's form: a valid address unless `fields` say otherwise."""
    return client.post(reverse("shop:checkout"), {**CHECKOUT_ADDRESS, "note": "", **fields}, follow=False)


def add_to_cart(client, product, quantity):
    return client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": quantity})


def test_home_lists_active_products_only(client):
    shown, hidden = ProductFactory(name="Pour-Over Kettle"), ProductFactory(name="Retired Mug", is_active=False)
    response = client.get(reverse("shop:home"))
    assert shown.name in response.content.decode()
    assert hidden.name not in response.content.decode()


def test_product_page_shows_price_and_stock(client):
    kettle = ProductFactory(name="Pour-Over Kettle", price=Decimal("59.00"), stock=4)
    response = client.get(kettle.get_absolute_url())
    assert response.status_code == 200
    assert "€59.00" in response.content.decode()


def test_inactive_product_page_is_404(client):
    assert client.get(ProductFactory(is_active=False).get_absolute_url()).status_code == 404


def test_add_to_cart_keeps_only_ids_and_quantities_in_the_session(client, product):
    response = add_to_cart(client, product, 2)
    assert response.status_code == 302
    assert client.session["cart"] == {str(product.pk): 2}


@pytest.mark.parametrize("quantity", ["0", "-1", "abc", "", "1.5", "101"])
def test_add_to_cart_refuses_bad_quantities(client, product, quantity):
    response = add_to_cart(client, product, quantity)
    assert response.status_code == 400
    assert "cart" not in client.session


def test_add_to_cart_refuses_more_than_in_stock(client):
    scarce = ProductFactory(stock=2)
    add_to_cart(client, scarce, 2)
    response = add_to_cart(client, scarce, 1)
    assert response.status_code == 400
    assert "Only 2 in stock" in response.content.decode()
    assert client.session["cart"] == {str(scarce.pk): 2}


def test_add_to_cart_of_unknown_product_is_404(client):
    assert client.post(reverse("shop:cart_add", args=["no-such-thing"]), {"quantity": 1}).status_code == 404


def test_cart_update_to_zero_removes_the_line(client, product):
    add_to_cart(client, product, 2)
    client.post(reverse("shop:cart_update", args=[product.slug]), {"quantity": 0})
    assert client.session["cart"] == {}


def test_cart_shows_lines_and_total(client):
    cups = ProductFactory(price=Decimal("24.00"))
    add_to_cart(client, cups, 3)
    response = client.get(reverse("shop:cart"))
    assert response.context["total"] == Decimal("72.00")
    assert cups.name in response.content.decode()


def test_checkout_requires_login(client):
    response = client.get(reverse("shop:checkout"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_checkout_places_the_order_empties_the_cart_and_shows_the_order(customer_client, customer):
    kettle = ProductFactory(price=Decimal("59.00"), stock=5)
    add_to_cart(customer_client, kettle, 2)

    response = customer_client.post(
        reverse("shop:checkout"), {**CHECKOUT_ADDRESS, "note": "Leave by the door"}, follow=True
    )

    order = Order.objects.get()
    assert (order.customer, order.total, order.note) == (customer, Decimal("118.00"), "Leave by the door")
    assert response.redirect_chain[-1][0] == order.get_absolute_url()
    assert customer_client.session["cart"] == {}
    kettle.refresh_from_db()
    assert kettle.stock == 3


def test_checkout_ignores_tampered_prices_in_post_data(customer_client):
    kettle = ProductFactory(price=Decimal("59.00"))
    add_to_cart(customer_client, kettle, 1)
    checkout(customer_client, price="0.01", total="0.01", **{f"price_{kettle.pk}": "0.01"})
    assert Order.objects.get().total == Decimal("59.00")


def test_checkout_with_empty_cart_shows_the_empty_cart_and_no_form(customer_client):
    response = customer_client.get(reverse("shop:checkout"))
    assert response.status_code == 200
    assert "Your cart is empty." in response.content.decode()
    assert "Place order" not in response.content.decode()


def test_checkout_post_with_empty_cart_shows_the_empty_cart_and_writes_nothing(customer_client):
    response = checkout(customer_client)
    assert response.status_code == 400
    assert "Your cart is empty." in response.content.decode()
    assert "Place order" not in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_when_stock_ran_out_meanwhile_shows_an_error_and_writes_nothing(customer_client):
    scarce = ProductFactory(stock=2)
    add_to_cart(customer_client, scarce, 2)
    scarce.stock = 1
    scarce.save()

    response = checkout(customer_client)

    assert response.status_code == 400
    assert "Only 1 of" in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_with_tampered_session_quantity_is_refused(customer_client, product):
    session = customer_client.session
    session["cart"] = {str(product.pk): -5}
    session.save()
    response = checkout(customer_client)
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_checkout_note_over_the_limit_is_a_form_error(customer_client, product):
    add_to_cart(customer_client, product, 1)
    response = checkout(customer_client, note="x" * 1001)
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_forms_are_csrf_protected(product):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 1}).status_code == 403


def test_retired_product_drops_out_of_the_cart(client, product):
    add_to_cart(client, product, 1)
    product.is_active = False
    product.save()
    response = client.get(reverse("shop:cart"))
    assert response.context["lines"] == []
