"""The orders' part of an email (orders/notifications.py, templates/orders/email/), as a real SMTP server got it:
the items with quantities and prices, the status, a link to the order page, the tracking link; never a staff note."""

from decimal import Decimal

import pytest
from django.db import transaction

from notifications.email import absolute_url
from notifications.offline import offline_deliveries_run
from notifications.services import notification_record
from orders.models import OrderStatus
from orders.notifications import ORDER_STATUS_CHANGED, order_status_payload
from orders.transitions import order_transition
from tests.factories import ProductFactory, UserFactory, place_order

pytestmark = pytest.mark.django_db

TRACKING = {"carrier": "Parcel & Co", "number": "PC<123>", "url": "https://track.example/?n=PC123&lang=en"}


@pytest.fixture(autouse=True)
def _due_at_once(settings):
    settings.NOTIFICATION_EMAIL_DELAY = 0


def test_a_shipped_orders_email_lists_its_items_with_quantities_and_prices_its_status_and_its_page(smtp):
    customer = UserFactory()
    mug, tea = ProductFactory(name="Mug <large>", price=Decimal("8.50")), ProductFactory(price=Decimal("4.25"))
    order = place_order(customer=customer, products=[mug, tea], quantity=2, status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED)

    offline_deliveries_run()

    [email] = smtp.received
    text, html = email.text(), email.html()
    page = absolute_url(order.get_absolute_url())
    assert page.startswith("https://") and page in text and f'href="{page}"' in html
    assert "Status: Shipped" in text and "<strong>Shipped</strong>" in html
    assert "2 x Mug <large> at €8.50 = €17.00" in text and f"2 x {tea.name} at €4.25 = €8.50" in text
    assert "Total: €25.50" in text
    assert "Mug &lt;large&gt;" in html and "<large>" not in html and "<strong>€25.50</strong>" in html


def test_a_shipped_orders_email_carries_the_tracking_link_when_the_payload_has_one(smtp):
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order.status = OrderStatus.SHIPPED
    payload = order_status_payload(order, previous_status="processing") | {"tracking": TRACKING}
    with transaction.atomic():
        notification_record(recipient_id=customer.pk, kind=ORDER_STATUS_CHANGED.name, payload=payload)

    offline_deliveries_run()

    [email] = smtp.received
    assert "Tracking: Parcel & Co PC<123>" in email.text() and f"Track it: {TRACKING['url']}" in email.text()
    assert "Parcel &amp; Co PC&lt;123&gt;" in email.html()
    assert 'href="https://track.example/?n=PC123&amp;lang=en"' in email.html()


def test_a_tracking_address_that_is_not_a_web_address_is_never_a_link(smtp):
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order.status = OrderStatus.SHIPPED
    tracking = TRACKING | {"url": "javascript:alert(1)"}
    payload = order_status_payload(order, previous_status="processing") | {"tracking": tracking}
    with transaction.atomic():
        notification_record(recipient_id=customer.pk, kind=ORDER_STATUS_CHANGED.name, payload=payload)

    offline_deliveries_run()

    [email] = smtp.received
    assert "javascript" not in email.html() and "javascript" not in email.text()
    assert "PC&lt;123&gt;" in email.html()


def test_a_staff_note_never_reaches_the_email_and_the_message_to_the_customer_does(smtp):
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order_transition(
        order_id=order.pk,
        to_status=OrderStatus.SHIPPED,
        customer_message="Packed with care",
        internal_note="INTERNAL-7f3a: chargeback risk",
    )

    offline_deliveries_run()

    [email] = smtp.received
    for part in (email.text(), email.html(), *map(str, email.message.values())):
        assert "INTERNAL-7f3a" not in part and "chargeback" not in part
    assert "Packed with care" in email.text() and "Packed with care" in email.html()
