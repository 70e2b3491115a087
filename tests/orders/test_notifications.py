"""The orders' notification kind: what a customer is told of each status, and what staff see of it live."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from notifications.groups import STAFF_GROUP
from notifications.models import Notification
from orders.models import Order, OrderStatus
from orders.notifications import ORDER_STATUS_MESSAGES, order_status_fanout, order_status_payload
from orders.transitions import order_transition
from tests.factories import StaffFactory, place_order

ORDER = {"pk": 7, "number": "SO-000007", "version": 3}


def test_every_status_has_its_customers_wording():
    assert set(ORDER_STATUS_MESSAGES) == set(OrderStatus.values)


@pytest.mark.parametrize("status", OrderStatus.values)
def test_each_statuss_payload_names_the_order_and_carries_only_what_the_customer_may_read(status):
    order = Order(**ORDER, status=status)

    payload = order_status_payload(order, previous_status="paid", customer_message="Left with the neighbour.")

    assert payload.keys() == {"order", "title", "body", "message", "changed_by", "url"}
    assert payload["order"] == {
        "id": 7,
        "number": "SO-000007",
        "status": status,
        "status_label": OrderStatus(status).label,
        "previous_status": "paid",
        "version": 3,
    }
    assert "SO-000007" in payload["title"] and payload["body"]
    assert (payload["message"], payload["url"]) == ("Left with the neighbour.", "/orders/SO-000007/")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "role", "label"),
    [("system", "system", "system"), ("customer", "customer", "you"), ("staff", "staff", "staff")],
)
def test_the_stored_notification_says_who_changed_the_order_in_the_order_page_s_words(who, role, label):
    order = place_order()
    actor = {"system": None, "customer": order.customer, "staff": StaffFactory()}[who]
    order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, actor=actor)

    payload = Notification.objects.get(recipient=order.customer).payload

    assert payload["changed_by"] == {"role": role, "label": label}
    assert order.events.last().changed_by.label == label  # what the timeline shows after a reload


@pytest.mark.parametrize(("actor", "actor_name"), [(get_user_model()(username="kim"), "kim"), (None, None)])
def test_staff_hear_of_the_change_with_who_made_it_and_no_message(actor, actor_name):
    payload = order_status_payload(Order(**ORDER, status=OrderStatus.SHIPPED), previous_status="processing")
    payload["message"] = "For the customer only."
    created_at = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    notification = Notification(recipient_id=42, payload=payload, actor=actor, created_at=created_at)

    assert order_status_fanout(notification) == [
        (
            STAFF_GROUP,
            {
                "type": "order_changed",
                "order": payload["order"],
                "customer_id": 42,
                "actor": actor_name,
                "created_at": "2026-11-25T08:30:00.000000+00:00",
            },
        )
    ]


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REFUNDED])
def test_from_shipped_on_the_payload_carries_the_carrier_label_the_number_and_the_link(status):
    order = Order(**ORDER, status=status, carrier="royal_mail", tracking_number="AB123456789GB")

    payload = order_status_payload(order, previous_status="processing")

    assert payload["tracking"] == {
        "carrier": "Royal Mail",
        "number": "AB123456789GB",
        "url": "https://www.royalmail.com/track-your-item#/tracking-results/AB123456789GB",
    }


@pytest.mark.django_db
def test_the_shipped_notification_stored_for_the_customer_carries_the_tracking():
    order = place_order(status=OrderStatus.PROCESSING)

    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="dpd", tracking_number="01234567890123")

    notification = Notification.objects.filter(recipient=order.customer).latest("seq")
    assert notification.payload["order"]["status"] == "shipped"
    assert notification.payload["tracking"] == {
        "carrier": "DPD",
        "number": "01234567890123",
        "url": "https://tracking.dpd.de/status/en_US/parcel/01234567890123",
    }


@pytest.mark.django_db
def test_an_order_shipped_without_tracking_has_no_tracking_in_its_payload():
    order = place_order(status=OrderStatus.SHIPPED)

    notification = Notification.objects.filter(recipient=order.customer).latest("seq")
    assert notification.payload["order"]["status"] == "shipped"
    assert "tracking" not in notification.payload
