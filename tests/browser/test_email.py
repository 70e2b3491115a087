"""The email as a mail client shows it: the HTML a real SMTP server received, rendered in Chromium."""

from decimal import Decimal

import pytest
from django.db import transaction
from playwright.sync_api import expect

from notifications.offline import offline_deliveries_run
from notifications.services import notification_record
from orders.models import OrderStatus
from orders.notifications import ORDER_STATUS_CHANGED, order_status_payload
from tests.browser.conftest import VIEWPORT
from tests.factories import ProductFactory, UserFactory, place_order

pytestmark = pytest.mark.django_db

TRACKING = {"carrier": "DHL", "number": "JD014600006281", "url": "https://tracking.example/JD014600006281"}


def test_a_shipped_orders_email_shows_its_items_its_tracking_link_and_how_to_unsubscribe(
    playwright_browser, smtp, screenshot, settings
):
    settings.NOTIFICATION_EMAIL_DELAY = 0
    customer = UserFactory(first_name="Alice")
    products = [ProductFactory(name="Espresso Cup Set", price=Decimal("24.00")),
                ProductFactory(name="Single-Origin Beans", price=Decimal("14.50"))]  # fmt: skip
    order = place_order(customer=customer, products=products, quantity=2, status=OrderStatus.PROCESSING)
    order.status = OrderStatus.SHIPPED
    payload = order_status_payload(order, previous_status="processing", customer_message="Packed with care.")
    with transaction.atomic():
        notification_record(
            recipient_id=customer.pk, kind=ORDER_STATUS_CHANGED.name, payload=payload | {"tracking": TRACKING}
        )
    offline_deliveries_run()
    [email] = smtp.received

    page = playwright_browser.new_page(viewport=VIEWPORT)
    try:
        page.set_content(email.html())
        expect(page.get_by_role("link", name=f"Order {order.number} has shipped")).to_be_visible()
        for product in products:
            expect(page.get_by_role("row", name=f"{product.name} 2")).to_be_visible()
        expect(page.get_by_role("link", name="track your parcel")).to_have_attribute("href", TRACKING["url"])
        unsubscribe = email.message["List-Unsubscribe"].strip().strip("<>")
        expect(page.get_by_role("link", name="Unsubscribe")).to_have_attribute("href", unsubscribe)
        screenshot(page, "email")
    finally:
        page.close()
