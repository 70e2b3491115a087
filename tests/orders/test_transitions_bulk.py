"""The set-based bulk transition: what one order at a time would write, in a few statements however many orders."""

import pytest
from django.db import transaction

from notifications.models import Notification, NotificationDelivery, NotificationPreference
from orders.carriers import TrackingInvalid, tracking_validate
from orders.models import Order, OrderEvent, OrderEventType, OrderStatus
from orders.transitions import OrderTransitionError, order_transition, orders_transition_each
from orders.transitions_bulk import orders_transition_bulk
from shop.models import Product
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import ProductFactory, StaffFactory, UserFactory, place_order

pytestmark = pytest.mark.django_db

DHL_NUMBER = "00340434161094042557"


def stored_state() -> dict:
    """Everything a transition writes, without the times it was written at (due times as offsets from them)."""
    return {
        "orders": list(
            Order.objects.order_by("pk").values_list("pk", "status", "version", "carrier", "tracking_number")
        ),
        "events": list(
            OrderEvent.objects.order_by("order_id", "pk").values_list(
                "order_id",
                "type",
                "old_status",
                "new_status",
                "actor_id",
                "customer_message",
                "internal_note",
                "carrier",
                "tracking_number",
            )
        ),  # fmt: skip
        "notifications": list(
            Notification.objects.order_by("recipient_id", "seq").values_list(
                "recipient_id", "seq", "kind", "payload", "actor_id", "published_at"
            )
        ),
        "deliveries": sorted(
            (
                delivery.notification.recipient_id,
                delivery.notification.seq,
                delivery.channel,
                delivery.state,
                delivery.due_at - delivery.notification.created_at,
            )
            for delivery in NotificationDelivery.objects.select_related("notification")
        ),  # fmt: skip
        "stock": list(Product.objects.order_by("pk").values_list("pk", "stock")),
    }


def one_by_one_then_undone(**arguments) -> tuple:
    """What the per-order reference path reports and writes for `arguments`, then rolled back."""
    with transaction.atomic():
        result = orders_transition_each(**arguments)
        written = stored_state()
        transaction.set_rollback(True)
    return result, written


def reported(result) -> tuple:
    return [(order.pk, order.status, order.version) for order in result.changed], result.skipped


@pytest.mark.parametrize("to_status", OrderStatus.values)
def test_a_bulk_change_writes_and_reports_exactly_what_one_order_at_a_time_would(to_status):
    """Walks the table: an order in every status, of two customers taking turns, moved to each status."""
    staff, customers = StaffFactory(), [UserFactory(), UserFactory()]
    orders = [
        place_order(customer=customers[index % 2], status=status, products=[ProductFactory(stock=5)], quantity=2)
        for index, status in enumerate(OrderStatus.values)
    ]
    arguments = {
        "order_ids": [order.pk for order in reversed(orders)],
        "to_status": to_status,
        "actor": staff,
        "customer_message": "Thank you for waiting",
        "internal_note": "batch 7",
    }
    expected_result, expected = one_by_one_then_undone(**arguments)

    result = orders_transition_bulk(**arguments)

    assert reported(result) == reported(expected_result)
    assert stored_state() == expected


def test_bulk_shipping_writes_each_orders_tracking_as_one_at_a_time_would():
    tracked, untracked = place_order(status=OrderStatus.PROCESSING), place_order(status=OrderStatus.PROCESSING)
    arguments = {
        "order_ids": [tracked.pk, untracked.pk],
        "to_status": OrderStatus.SHIPPED,
        "tracking": {tracked.pk: tracking_validate(carrier="dhl", number=DHL_NUMBER)},
    }
    expected_result, expected = one_by_one_then_undone(**arguments)

    result = orders_transition_bulk(**arguments)

    assert reported(result) == reported(expected_result)
    assert stored_state() == expected
    assert (
        Notification.objects.get(payload__order__id=tracked.pk, payload__order__status="shipped").payload["tracking"][
            "number"
        ]
        == DHL_NUMBER
    )


@pytest.mark.parametrize(("email", "push"), [(None, True), (False, True), (True, False), (False, None)])
def test_bulk_shipping_plans_the_offline_deliveries_one_at_a_time_would_by_choice_default_and_browser(
    email, push, settings
):
    settings.WEBPUSH_VAPID_PRIVATE_KEY = "set"  # the shop can push (only whether it is set counts here)
    chooser, subscribed, plain = UserFactory(), UserFactory(), UserFactory()
    for channel, enabled in (("email", email), ("push", push)):
        if enabled is not None:
            NotificationPreference.objects.create(user=chooser, topic="order.shipped", channel=channel, enabled=enabled)
    for customer in (chooser, subscribed):
        customer.push_subscriptions.create(endpoint=f"https://push.example/{customer.pk}", p256dh="k", auth="a")
    orders = [
        place_order(customer=customer, status=OrderStatus.PROCESSING) for customer in (chooser, subscribed, plain)
    ]
    arguments = {"order_ids": [order.pk for order in orders], "to_status": OrderStatus.SHIPPED}
    _, expected = one_by_one_then_undone(**arguments)

    orders_transition_bulk(**arguments)

    assert stored_state()["deliveries"] == expected["deliveries"]
    assert {channel for *_, channel, _, _ in expected["deliveries"]} == {"email", "push"}


def test_tracking_with_any_move_but_to_shipped_is_refused_and_writes_nothing():
    order = place_order(status=OrderStatus.PAID)
    before = stored_state()

    with pytest.raises(TrackingInvalid, match="when the order is marked shipped"):
        orders_transition_bulk(
            order_ids=[order.pk],
            to_status=OrderStatus.PROCESSING,
            tracking={order.pk: tracking_validate(carrier="dhl", number=DHL_NUMBER)},
        )

    assert stored_state() == before


def test_an_order_that_no_longer_exists_is_reported_and_the_others_change():
    order = place_order(status=OrderStatus.PAID)

    result = orders_transition_bulk(order_ids=[order.pk, order.pk + 1000], to_status=OrderStatus.PROCESSING)

    assert [changed.pk for changed in result.changed] == [order.pk]
    assert result.skipped == [(f"#{order.pk + 1000}", f"Order #{order.pk + 1000} no longer exists.")]


def test_chunks_change_the_same_orders_and_report_the_same_refusals_as_one_transaction():
    orders = [place_order(status=status) for status in [OrderStatus.PAID, OrderStatus.DELIVERED] * 3]
    arguments = {"order_ids": [order.pk for order in orders], "to_status": OrderStatus.PROCESSING}
    expected_result, expected = one_by_one_then_undone(**arguments)

    result = orders_transition_bulk(**arguments, chunk_size=2)

    assert reported(result) == reported(expected_result)
    assert stored_state() == expected


def test_each_customers_seqs_stay_gapless_across_single_and_bulk_changes():
    customer = UserFactory()
    orders = [place_order(customer=customer) for _ in range(4)]

    order_transition(order_id=orders[0].pk, to_status=OrderStatus.PAID)
    orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.CANCELLED)
    order_transition(order_id=place_order(customer=customer).pk, to_status=OrderStatus.PAID)

    seqs = list(customer.notifications.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 6
    assert customer.notificationcounter.last_seq == 6


def test_one_event_and_one_notification_for_each_changed_order_and_none_for_a_refused_one():
    changing = [place_order() for _ in range(3)]
    refused = place_order(status=OrderStatus.CANCELLED)
    events, notifications = OrderEvent.objects.count(), Notification.objects.count()

    orders_transition_bulk(order_ids=[order.pk for order in [*changing, refused]], to_status=OrderStatus.PAID)

    assert OrderEvent.objects.count() - events == 3
    assert Notification.objects.count() - notifications == 3
    for order in changing:
        assert order.events.filter(new_status=OrderStatus.PAID).count() == 1
        assert Notification.objects.filter(payload__order__id=order.pk, payload__order__status="paid").count() == 1


def test_nothing_is_published_before_commit_and_everything_once_it_commits(django_capture_on_commit_callbacks):
    orders = [place_order(customer=UserFactory()) for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=False) as hooks:
        orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.PAID)
    assert not Notification.objects.filter(published_at__isnull=False).exists()

    for hook in hooks:
        hook()
    assert Notification.objects.filter(published_at=None).count() == 0
    assert len(hooks) == 1  # one publish for the whole chunk


def test_a_rolled_back_bulk_change_writes_nothing_and_publishes_nothing(django_capture_on_commit_callbacks):
    orders = [place_order(customer=UserFactory()) for _ in range(3)]
    before = stored_state()

    with django_capture_on_commit_callbacks(execute=False) as hooks:
        with pytest.raises(RuntimeError, match="changed my mind"), transaction.atomic():
            orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.PAID)
            raise RuntimeError("changed my mind")

    assert stored_state() == before
    assert hooks == []


@pytest.mark.parametrize("to_status", [OrderStatus.PAID, OrderStatus.CANCELLED])
def test_the_number_of_queries_does_not_grow_with_the_number_of_orders(
    to_status, django_assert_num_queries, django_capture_on_commit_callbacks
):
    """One chunk's statements (three more to restock) and its publish's, the same for one order as for thirty."""
    staff = StaffFactory()
    for size in (1, 30):
        orders = [place_order(customer=UserFactory()) for _ in range(size)]
        with django_assert_num_queries(14 if to_status == OrderStatus.CANCELLED else 11):
            with django_capture_on_commit_callbacks(execute=True):
                orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=to_status, actor=staff)


# --- Beside concurrent changes: real transactions, each thread its own connection ---------------------------------


def seqs_gapless(customer) -> bool:
    seqs = list(Notification.objects.filter(recipient=customer).order_by("seq").values_list("seq", flat=True))
    return seqs == list(range(1, len(seqs) + 1))


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_bulk_changes_racing_single_changes_of_the_same_orders_and_customers_never_deadlock_and_lose_nothing():
    customers = [UserFactory() for _ in range(4)]
    orders = [place_order(customer=customers[index % 4]) for index in range(24)]
    ids = [order.pk for order in orders]

    def bulk(order_ids, to_status):
        return orders_transition_bulk(order_ids=order_ids, to_status=to_status, chunk_size=5)

    def single(order_id, to_status):
        return order_transition(order_id=order_id, to_status=to_status)

    outcomes = run_concurrently(
        lambda change, *args: change(*args),
        [
            (bulk, ids, OrderStatus.PAID),
            (bulk, list(reversed(ids[6:])), OrderStatus.CANCELLED),
            *((single, order_id, OrderStatus.CANCELLED) for order_id in reversed(ids[::3])),
            *((single, order_id, OrderStatus.PAID) for order_id in ids[1::5]),
        ],
    )

    failures = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, OrderTransitionError)]
    assert failures == []
    for customer in customers:
        assert seqs_gapless(customer)
    for order in Order.objects.filter(pk__in=ids):
        changes = list(order.events.filter(type=OrderEventType.STATUS_CHANGED).values_list("new_status", flat=True))
        notified = list(
            Notification.objects.filter(payload__order__id=order.pk)
            .order_by("seq")
            .values_list("payload__order__status", flat=True)
        )
        assert notified == changes and changes[-1:] == [order.status]
