"""Money: every price in SHOP_CURRENCY, written for the active language, from Decimals that stay Decimals."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from orders.models import OrderStatus
from shop.money import currency_code_check, money_format
from tests.factories import ProductFactory, place_order
from tests.shop.test_storefront import add_to_cart

pytestmark = pytest.mark.django_db


def test_an_amount_is_written_in_the_shops_currency_for_the_active_language(settings):
    settings.SHOP_CURRENCY = "EUR"
    assert money_format(Decimal("1234.50")) == "€1,234.50"
    with translation.override("de"):
        assert money_format(Decimal("1234.50")) == "1.234,50\xa0€"
    settings.SHOP_CURRENCY = "USD"
    assert money_format(Decimal("19.9")) == "$19.90"


def test_a_decimal_is_never_rounded_through_a_float():
    # 0.1 + 0.2 as floats is 0.30000000000000004; as Decimals it is exactly 0.30, and so is its text.
    assert money_format(Decimal("0.10") + Decimal("0.20")) == "€0.30"
    assert money_format(Decimal("1000000000000000.05")) == "€1,000,000,000,000,000.05"


@pytest.mark.parametrize("code", ["XXXX", "euro", "", "€"])
def test_a_currency_that_is_not_an_iso_4217_code_is_refused_by_name(code):
    with pytest.raises(ValueError, match="SHOP_CURRENCY must be an ISO 4217 currency code"):
        currency_code_check(code)


def test_every_storefront_page_shows_prices_in_the_currency(client, customer, settings):
    settings.SHOP_CURRENCY = "GBP"
    kettle = ProductFactory(name="Pour-Over Kettle", price=Decimal("59.00"), stock=4)

    assert "£59.00" in client.get(reverse("shop:home")).content.decode()
    assert "£59.00" in client.get(kettle.get_absolute_url()).content.decode()
    client.force_login(customer)
    add_to_cart(client, kettle, 2)
    for page in ("shop:cart", "shop:checkout"):
        html = client.get(reverse(page)).content.decode()
        assert "£59.00" in html and "£118.00" in html, page


def test_the_order_pages_show_prices_in_the_currency(client, customer):
    order = place_order(customer=customer, products=[ProductFactory(price=Decimal("24.00"))], quantity=3)
    client.force_login(customer)

    assert "€72.00" in client.get(reverse("orders:list")).content.decode()
    html = client.get(order.get_absolute_url()).content.decode()
    assert "€24.00" in html and "€72.00" in html


def test_the_admin_shows_prices_in_the_currency(staff_client):
    product = ProductFactory(price=Decimal("14.50"))
    order = place_order(products=[product], quantity=2, status=OrderStatus.PAID)

    assert "€14.50" in staff_client.get(reverse("admin:shop_product_changelist")).content.decode()
    assert "€29.00" in staff_client.get(reverse("admin:orders_order_changelist")).content.decode()
    change = staff_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert "€14.50" in change and "€29.00" in change
