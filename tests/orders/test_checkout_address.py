"""Checkout's name and shipping address: validated on the server, copied onto the order, shown escaped everywhere
the order is (its page, the admin, the email), and remembered in the address book for the next checkout."""

import re

import pytest
from django.urls import reverse

from accounts.models import CustomerAddress
from accounts.services import customer_address_update
from notifications.offline import offline_deliveries_run
from orders.models import Order, OrderAddress, OrderStatus
from orders.transitions import order_transition
from tests.factories import CHECKOUT_ADDRESS, ProductFactory, place_order

pytestmark = pytest.mark.django_db

MARKUP_ADDRESS = {**CHECKOUT_ADDRESS, "full_name": "<b>Dana</b> & Co", "line2": "<script>x()</script>"}


def checkout(client, product, **fields):
    client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 1})
    return client.post(reverse("shop:checkout"), {**CHECKOUT_ADDRESS, "note": "", **fields})


def test_checkout_copies_the_address_onto_the_order(customer_client, customer, product):
    response = checkout(customer_client, product, line2="Hinterhaus, 3. OG")

    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == order.get_absolute_url()
    assert order.shipping_address.as_fields() == {**CHECKOUT_ADDRESS, "line2": "Hinterhaus, 3. OG"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"full_name": ""}, "full_name", "This field is required."),
        ({"line1": "  "}, "line1", "This field is required."),
        ({"postcode": ""}, "postcode", "This field is required."),
        ({"city": ""}, "city", "This field is required."),
        ({"country": ""}, "country", "This field is required."),
        ({"country": "US"}, "country", "Select a valid choice."),  # a country the shop does not ship to
        ({"country": "ZZ"}, "country", "Select a valid choice."),
        ({"phone": "call me"}, "phone", "Enter a phone number"),
        ({"phone": "12345"}, "phone", "Enter a phone number"),  # under 6
        ({"phone": "+49 (30) 1234-5678 999"}, "phone", "at most 20 characters"),
        ({"phone": "---- ----"}, "phone", "Enter a phone number"),  # no digit
        ({"full_name": "x" * 151}, "full_name", "at most 150 characters"),
    ],
)
def test_a_bad_address_is_a_form_error_and_writes_nothing(customer_client, product, fields, field, message):
    response = checkout(customer_client, product, **fields)

    assert response.status_code == 400
    assert message in str(response.context["address_form"].errors[field])
    assert 'class="field field-invalid"' in response.content.decode()
    assert not Order.objects.exists() and not OrderAddress.objects.exists() and not CustomerAddress.objects.exists()
    product.refresh_from_db()
    assert product.stock == 10
    assert customer_client.session["cart"] == {str(product.pk): 1}  # the cart is still there to try again


@pytest.mark.parametrize("phone", ["", "+49 30 1234567", "(030) 123-456", "0301234"])
def test_a_phone_is_optional_and_loosely_checked(customer_client, product, phone):
    assert checkout(customer_client, product, phone=phone).status_code == 302
    assert Order.objects.get().shipping_address.phone == phone


def test_the_country_list_names_the_countries_the_shop_ships_to(customer_client, product, settings):
    settings.SHOP_SHIPPING_COUNTRIES = ["FR", "DE"]
    customer_client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 1})
    html = customer_client.get(reverse("shop:checkout")).content.decode()
    assert '<option value="FR">France</option>' in html and '<option value="DE">Germany</option>' in html
    assert 'value="AT"' not in html


def test_saving_the_address_remembers_it_as_the_default_that_prefills_the_next_checkout(
    customer_client, customer, product
):
    checkout(customer_client, product, save_address="on")

    [entry] = CustomerAddress.objects.filter(customer=customer)
    assert entry.is_default and entry.as_fields() == CHECKOUT_ADDRESS
    customer_client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 1})
    form = customer_client.get(reverse("shop:checkout")).context["address_form"]
    assert {field: form[field].value() for field in CHECKOUT_ADDRESS} == CHECKOUT_ADDRESS


def test_the_same_address_saved_twice_is_one_entry(customer_client, customer, product):
    checkout(customer_client, product, save_address="on")
    checkout(customer_client, product, save_address="on")
    assert Order.objects.count() == 2
    assert CustomerAddress.objects.filter(customer=customer).count() == 1


def test_an_address_not_saved_stays_out_of_the_address_book(customer_client, customer, product):
    checkout(customer_client, product)  # the box unticked: not posted
    assert Order.objects.get().shipping_address.city == "Berlin"
    assert not CustomerAddress.objects.filter(customer=customer).exists()


def test_without_an_address_book_checkout_prefills_the_customer_s_name(customer_client, customer, product):
    customer_client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 1})
    form = customer_client.get(reverse("shop:checkout")).context["address_form"]
    assert form["full_name"].value() == customer.get_full_name()


def test_editing_the_address_book_leaves_the_order_s_snapshot_as_it_was(customer_client, customer, product):
    checkout(customer_client, product, save_address="on")
    entry = CustomerAddress.objects.get(customer=customer)

    customer_address_update(entry=entry, address={**CHECKOUT_ADDRESS, "line1": "Neue Straße 1", "city": "Hamburg"})
    customer_client.post(reverse("accounts:address_delete", args=[entry.pk]))

    assert Order.objects.get().shipping_address.as_fields() == CHECKOUT_ADDRESS
    assert "Lindenstraße 12" in customer_client.get(Order.objects.get().get_absolute_url()).content.decode()


def test_the_order_page_shows_the_address_as_text(customer_client, customer):
    order = place_order(customer=customer, address=MARKUP_ADDRESS)

    html = customer_client.get(order.get_absolute_url()).content.decode()

    assert "&lt;b&gt;Dana&lt;/b&gt; &amp; Co<br>" in html and "<b>Dana</b>" not in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "<script>x()" not in html
    assert "10969 Berlin<br>Germany<br>+49 30 1234567" in html


def test_an_order_placed_before_checkout_asked_for_an_address_shows_a_dash(customer_client, customer):
    order = place_order(customer=customer)  # no address, like the orders placed before
    html = customer_client.get(order.get_absolute_url()).content.decode()
    assert re.search(r'<dd id="order-address">\s*—\s*</dd>', html)


def test_the_admin_shows_the_address_read_only_and_escaped_in_the_first_fieldset(staff_client):
    order = place_order(address=MARKUP_ADDRESS)
    url = reverse("admin:orders_order_change", args=[order.pk])

    response = staff_client.get(url)

    html = response.content.decode()
    first_fieldset = response.context["adminform"].fieldsets[0][1]["fields"]
    assert "ship_to" in first_fieldset
    assert "&lt;b&gt;Dana&lt;/b&gt; &amp; Co<br>Lindenstraße 12<br>" in html and "<b>Dana</b>" not in html
    assert 'name="full_name"' not in html  # read-only: no input for it
    assert "—" in staff_client.get(reverse("admin:orders_order_change", args=[place_order().pk])).content.decode()


def test_the_order_email_shows_the_address_escaped_in_html_and_as_written_in_text(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 0
    order = place_order(address=MARKUP_ADDRESS, status=OrderStatus.PROCESSING, products=[ProductFactory()])
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED)

    offline_deliveries_run()

    [email] = smtp.received
    html, text = email.html(), email.text()
    assert "Shipping to:<br>&lt;b&gt;Dana&lt;/b&gt; &amp; Co<br>" in html and "<b>Dana</b>" not in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "Shipping to:\r\n<b>Dana</b> & Co\r\nLindenstraße 12\r\n" in text  # plain text: nothing to escape


def test_an_order_refused_at_checkout_remembers_no_address(customer_client, customer, product):
    customer_client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": 2})
    product.stock = 1
    product.save()

    response = customer_client.post(reverse("shop:checkout"), {**CHECKOUT_ADDRESS, "save_address": "on"})

    assert response.status_code == 400 and "Only 1 of" in response.content.decode()
    assert not Order.objects.exists() and not CustomerAddress.objects.filter(customer=customer).exists()
