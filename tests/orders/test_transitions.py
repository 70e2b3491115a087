"""The transition table, walked whole: every allowed move works, every other is refused."""

from itertools import product as pairs

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from orders.models import OrderEvent, OrderEventType, OrderStatus
from orders.transitions import (
    TRANSITIONS,
    InvalidTransition,
    StaleOrder,
    order_transition,
    orders_transition_bulk,
)
from tests.factories import ProductFactory, place_order

ALL_PAIRS = list(pairs(OrderStatus.values, OrderStatus.values))
ALLOWED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
FORBIDDEN = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]

pytestmark = pytest.mark.django_db


def test_table_covers_every_status_and_names_only_real_ones():
    assert set(TRANSITIONS) == set(OrderStatus.values)
    for targets in TRANSITIONS.values():
        assert targets <= set(OrderStatus.values)


def test_terminal_statuses_have_no_way_out():
    assert TRANSITIONS[OrderStatus.CANCELLED] == frozenset()
    assert TRANSITIONS[OrderStatus.REFUNDED] == frozenset()


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED)
def test_allowed_transition_changes_status_bumps_version_and_records_event(from_status, to_status, staff):
    order = place_order(status=from_status)
    version = order.version

    changed = order_transition(
        order_id=order.pk, to_status=to_status, actor=staff, customer_message="On its way", internal_note="by the book"
    )

    changed.refresh_from_db()
    assert changed.status == to_status
    assert changed.version == version + 1
    event = changed.events.last()
    assert (event.type, event.old_status, event.new_status) == (OrderEventType.STATUS_CHANGED, from_status, to_status)
    assert (event.actor, event.customer_message, event.internal_note) == (staff, "On its way", "by the book")


@pytest.mark.parametrize(("from_status", "to_status"), FORBIDDEN)
def test_forbidden_transition_is_refused_and_writes_nothing(from_status, to_status):
    order = place_order(status=from_status)
    events_before = OrderEvent.objects.filter(order=order).count()

    with pytest.raises(InvalidTransition, match=f"cannot go from {OrderStatus(from_status).label.lower()}"):
        order_transition(order_id=order.pk, to_status=to_status)

    order.refresh_from_db()
    assert order.status == from_status
    assert OrderEvent.objects.filter(order=order).count() == events_before


def test_stale_version_is_refused_with_a_clear_message():
    order = place_order(status=OrderStatus.PAID)
    order_transition(order_id=order.pk, to_status=OrderStatus.PROCESSING)

    with pytest.raises(StaleOrder, match="changed by someone else"):
        order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, expected_version=order.version)

    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING


def test_cancelling_puts_the_items_back_in_stock():
    espresso = ProductFactory(stock=5)
    order = place_order(products=[espresso], quantity=2)
    espresso.refresh_from_db()
    assert espresso.stock == 3

    order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED)

    espresso.refresh_from_db()
    assert espresso.stock == 5


def test_bulk_transition_changes_the_allowed_and_reports_the_rest():
    paid = [place_order(status=OrderStatus.PAID) for _ in range(3)]
    delivered = place_order(status=OrderStatus.DELIVERED)

    result = orders_transition_bulk(
        order_ids=[order.pk for order in [*paid, delivered]], to_status=OrderStatus.PROCESSING
    )

    assert sorted(order.pk for order in result.changed) == sorted(order.pk for order in paid)
    assert result.skipped == [(delivered.number, f"Order {delivered.number} cannot go from delivered to processing.")]
    delivered.refresh_from_db()
    assert delivered.status == OrderStatus.DELIVERED


def test_a_transition_tells_the_notification_who_acted_without_reading_the_history_back(staff):
    order = place_order()

    with CaptureQueriesContext(connection) as queries:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)

    history = OrderEvent._meta.db_table
    assert [q["sql"] for q in queries if q["sql"].startswith("SELECT") and history in q["sql"]] == []
    assert Notification.objects.get(recipient=order.customer).actor == staff


def test_order_events_are_append_only():
    event = place_order().events.first()
    event.internal_note = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
