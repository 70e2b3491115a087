"""The transition table, walked whole: every allowed move works, every other is refused."""

import logging
from itertools import product as pairs

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from orders.carriers import TrackingInvalid, tracking_validate
from orders.models import Order, OrderEvent, OrderEventType, OrderStatus
from orders.transitions import (
    TRANSITIONS,
    InvalidTransition,
    StaleOrder,
    order_transition,
)
from orders.transitions_bulk import orders_transition_bulk
from tests.factories import ProductFactory, place_order
from tests.log_capture import json_log_captured

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


DHL_NUMBER = "00340434161094042557"


def stored(order) -> tuple:
    """What a refused change must leave as it was: the order's row and its history."""
    row = Order.objects.values("status", "version", "carrier", "tracking_number").get(pk=order.pk)
    return row, OrderEvent.objects.filter(order=order).count(), Notification.objects.count()


def test_shipping_with_tracking_stores_it_on_the_order_and_its_history_event(staff):
    order = place_order(status=OrderStatus.PROCESSING)

    shipped = order_transition(
        order_id=order.pk, to_status=OrderStatus.SHIPPED, actor=staff, carrier="dhl", tracking_number=DHL_NUMBER
    )

    shipped.refresh_from_db()
    assert (shipped.status, shipped.carrier, shipped.tracking_number) == ("shipped", "dhl", DHL_NUMBER)
    assert shipped.tracking == tracking_validate(carrier="dhl", number=DHL_NUMBER)
    event = shipped.events.last()
    assert (event.new_status, event.carrier, event.tracking_number) == ("shipped", "dhl", DHL_NUMBER)


def test_shipping_stores_the_number_as_checked_without_spaces_and_in_capitals():
    order = place_order(status=OrderStatus.PROCESSING)

    order_transition(
        order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="ups", tracking_number="1z999aa1 0123456784"
    )

    assert Order.objects.get(pk=order.pk).tracking_number == "1Z999AA10123456784"


def test_shipping_without_tracking_still_ships():
    order = place_order(status=OrderStatus.PROCESSING)

    shipped = order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED)

    assert (shipped.status, shipped.tracking) == (OrderStatus.SHIPPED, None)


@pytest.mark.parametrize(
    "later", [[OrderStatus.DELIVERED], [OrderStatus.REFUNDED], [OrderStatus.DELIVERED, OrderStatus.REFUNDED]]
)
def test_the_statuses_after_shipped_keep_the_tracking_and_their_events_do_not_repeat_it(later):
    order = place_order(status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="dhl", tracking_number=DHL_NUMBER)

    for status in later:
        order_transition(order_id=order.pk, to_status=status)

    order.refresh_from_db()
    assert (order.status, order.carrier, order.tracking_number) == (later[-1], "dhl", DHL_NUMBER)
    assert [event.tracking_number for event in order.events.all()][-len(later) :] == [""] * len(later)


@pytest.mark.parametrize(("from_status", "to_status"), [(a, b) for a, b in ALLOWED if b != OrderStatus.SHIPPED])
def test_tracking_with_any_move_but_to_shipped_is_refused_and_writes_nothing(from_status, to_status):
    order = place_order(status=from_status)
    before = stored(order)

    with pytest.raises(TrackingInvalid, match="when the order is marked shipped"):
        order_transition(order_id=order.pk, to_status=to_status, carrier="dhl", tracking_number=DHL_NUMBER)

    assert stored(order) == before


@pytest.mark.parametrize(
    ("carrier", "number"),
    [("hermes", DHL_NUMBER), ("dhl", "0034<0434"), ("dhl", "1" * 41), ("", DHL_NUMBER), ("dhl", "")],
    ids=["unknown-carrier", "markup", "too-long", "number-without-carrier", "carrier-without-number"],
)
def test_invalid_tracking_refuses_the_move_to_shipped_and_writes_nothing(carrier, number):
    order = place_order(status=OrderStatus.PROCESSING)
    before = stored(order)

    with pytest.raises(TrackingInvalid):
        order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier=carrier, tracking_number=number)

    assert stored(order) == before


def test_bulk_shipping_gives_each_order_its_own_tracking_and_ships_the_rest_without():
    first, second, untracked = (place_order(status=OrderStatus.PROCESSING) for _ in range(3))
    tracking = {
        first.pk: tracking_validate(carrier="dhl", number=DHL_NUMBER),
        second.pk: tracking_validate(carrier="ups", number="1Z999AA10123456784"),
    }

    result = orders_transition_bulk(
        order_ids=[first.pk, second.pk, untracked.pk], to_status=OrderStatus.SHIPPED, tracking=tracking
    )

    assert len(result.changed) == 3 and result.skipped == []
    shipped = {order.pk: (order.carrier, order.tracking_number) for order in Order.objects.all()}
    assert shipped == {first.pk: ("dhl", DHL_NUMBER), second.pk: ("ups", "1Z999AA10123456784"), untracked.pk: ("", "")}


@pytest.mark.parametrize(("carrier", "number"), [("dhl", ""), ("", DHL_NUMBER)])
def test_the_database_refuses_a_carrier_without_a_number_and_a_number_without_a_carrier(carrier, number):
    order = place_order(status=OrderStatus.SHIPPED)

    with pytest.raises(IntegrityError, match="order_tracking_carrier_and_number_together"), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(carrier=carrier, tracking_number=number)


def test_a_transition_logs_one_line_naming_the_order_and_the_move_and_nothing_after_it_names_the_order():
    first, second = place_order(status=OrderStatus.PAID), place_order(status=OrderStatus.PAID)

    with json_log_captured() as log:
        orders_transition_bulk(order_ids=[first.pk, second.pk], to_status=OrderStatus.PROCESSING)
        logging.getLogger("orders.example").info("after the changes")

    moves = [(line["order"], line["from_status"], line["to_status"]) for line in log.events("order_transitioned")]
    assert moves == [(first.number, "paid", "processing"), (second.number, "paid", "processing")]
    assert "order" not in log.events("after the changes")[0]


@pytest.mark.django_db(transaction=True)
def test_a_change_is_five_statements_in_its_transaction_and_two_after_its_commit(django_assert_num_queries):
    """One producer's changes per second are its round trips (docs/performance.md, "One producer's changes")."""
    order = place_order()

    with django_assert_num_queries(9) as queries:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)

    notifications = Notification._meta.db_table
    assert [statement(query["sql"]) for query in queries.captured_queries] == [
        "BEGIN",
        f"SELECT {Order._meta.db_table} FOR UPDATE",  # the lock, and the order as it is
        f"INSERT {OrderEvent._meta.db_table}",  # the history
        f"UPDATE {Order._meta.db_table}",
        "INSERT notifications_notificationcounter",  # the seq and the unread version
        f"WITH INSERT {notifications}",  # the outbox row, its offline deliveries and the unread count
        "COMMIT",
        f"UPDATE {notifications}",  # after COMMIT: the claim, then the send
        f"UPDATE {notifications}",  # published
    ]
    assert Notification.objects.get(recipient=order.customer).published_at is not None


def statement(sql: str) -> str:
    """A statement's kind and first table, e.g. "UPDATE orders_order"."""
    words = sql.replace('"', "").split()
    kind = words[0]
    if len(words) == 1:
        return kind
    if kind == "WITH":
        return f"WITH {statement(sql[sql.index('INSERT') :])}"
    table = words[words.index({"SELECT": "FROM", "INSERT": "INTO"}.get(kind, kind)) + 1]
    return f"{kind} {table}" + (" FOR UPDATE" if "FOR UPDATE" in sql else "")
