"""An order's status changes only through `order_transition`; every other way to write it is refused.

Each path that can write `Order.status` either goes through `order_transition`, and then the order's history and its
customer's notification agree with the change, or raises `StatusWriteRefused` naming `order_transition` before
anything reaches the database: the orders table, the history and the notifications are re-read and found as they were.
"""

import json

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderEventType, OrderItem, OrderQuerySet, OrderStatus
from orders.status_writes import StatusWriteRefused
from orders.tasks import advance_fulfilment
from orders.transitions import order_transition
from orders.transitions_bulk import orders_transition_bulk
from tests.factories import place_order
from tests.orders.test_admin import change_form_data, change_url

pytestmark = pytest.mark.django_db

PAID, PROCESSING = OrderStatus.PAID, OrderStatus.PROCESSING


def database_state() -> dict:
    """Every order row as stored, and every history entry and notification there is."""
    return {
        "orders": list(Order.objects.order_by("pk").values_list("pk", "status", "version", "note", "updated_at")),
        "events": list(OrderEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", flat=True)),
    }


def assert_refused_with_nothing_written(write) -> None:
    # Checked inside the transaction the write ran in: refused before its SQL, not rolled back after it.
    with transaction.atomic():
        before = database_state()
        with pytest.raises(StatusWriteRefused, match="order_transition"):
            write()
        assert database_state() == before


def assert_change_recorded(order: Order, *, old_status: str, new_status: str, actor) -> None:
    """The stored order is in `new_status`, with the one history entry and the one customer's notification of
    this order's change from `old_status`."""
    stored = Order.objects.get(pk=order.pk)
    event = OrderEvent.objects.get(order_id=order.pk, old_status=old_status, new_status=new_status)
    notification = Notification.objects.get(
        recipient=stored.customer,
        kind="order.status_changed",
        payload__order__id=order.pk,
        payload__order__previous_status=old_status,
        payload__order__status=new_status,
    )
    assert stored.status == new_status
    assert (event.type, event.actor) == (OrderEventType.STATUS_CHANGED, actor)
    assert (notification.payload["order"]["version"], notification.payload["message"], notification.actor) == (
        stored.version,
        event.customer_message,
        event.actor,
    )


# --- the shell reproduction of issue 16, with autocommit as in `manage.py shell` ---


@pytest.mark.django_db(transaction=True)
def test_saving_a_new_status_outside_any_transaction_is_refused_and_commits_nothing():
    order = place_order()
    before = database_state()

    order.status = "paid"
    with pytest.raises(StatusWriteRefused, match="order_transition"):
        order.save()

    assert database_state() == before
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db(transaction=True)
def test_order_transition_outside_any_transaction_commits_the_status_its_event_and_its_notification(staff):
    order = place_order()

    order_transition(order_id=order.pk, to_status=PAID, actor=staff)

    assert_change_recorded(order, old_status=OrderStatus.PENDING_PAYMENT, new_status=PAID, actor=staff)


# --- every other way to write the status, tried on the instance order_transition returned ---


def _save(order, **kwargs):
    order.status = PROCESSING
    order.save(**kwargs)


def _save_other_field_with_a_new_status_in_memory(order):
    # Nothing but the note would be stored, yet post_save would announce the status: refused as well.
    order.status, order.note = PROCESSING, "Leave at the door"
    order.save(update_fields=["note"])


def _overwrite_by_pk(order):
    Order(pk=order.pk, customer=order.customer, number=order.number, status=PROCESSING).save()


def _bulk_upsert_over_the_order(order):
    Order.objects.bulk_create(
        [Order(pk=order.pk, customer=order.customer, status=OrderStatus.PENDING_PAYMENT)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["status"],
    )


def _bulk_upsert_with_positional_arguments(order):
    # bulk_create(objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields)
    Order.objects.bulk_create(
        [Order(pk=order.pk, customer=order.customer, status=OrderStatus.PENDING_PAYMENT)],
        None,
        False,
        True,
        ["status"],
        ["id"],
    )


REFUSED_WRITES = {
    "save()": _save,
    "save(update_fields=['status'])": lambda order: _save(order, update_fields=["status"]),
    "save(update_fields=['note']) with the status changed in memory": _save_other_field_with_a_new_status_in_memory,
    "save() of an instance built with the order's pk": _overwrite_by_pk,
    "QuerySet.update(status=...)": lambda order: Order.objects.filter(pk=order.pk).update(status=PROCESSING),
    "Manager.update(status=...)": lambda order: Order.objects.update(status=PROCESSING),
    "customer.orders.update(status=...)": lambda order: order.customer.orders.update(status=PROCESSING),
    "QuerySet.aupdate(status=...)": lambda order: async_to_sync(Order.objects.filter(pk=order.pk).aupdate)(
        status=PROCESSING
    ),
    "update_or_create(defaults={'status': ...})": lambda order: Order.objects.update_or_create(
        pk=order.pk, defaults={"status": PROCESSING}
    ),
    "bulk_update(..., ['status'])": lambda order: Order.objects.bulk_update(
        [Order(pk=order.pk, status=PROCESSING)], ["status"]
    ),
    "bulk_create(update_conflicts, update_fields=['status'])": _bulk_upsert_over_the_order,
    "bulk_create() upsert of the status with positional arguments": _bulk_upsert_with_positional_arguments,
    "Order._base_manager.update(status=...)": lambda order: Order._base_manager.filter(pk=order.pk).update(
        status=PROCESSING
    ),
    "update(status=...) of the order an item points to": lambda order: (
        OrderItem.order.get_queryset().filter(pk=order.pk).update(status=PROCESSING)
    ),
    "create() in a later status": lambda order: Order.objects.create(customer=order.customer, status=PROCESSING),
    "bulk_create() in a later status": lambda order: Order.objects.bulk_create(
        [Order(customer=order.customer), Order(customer=order.customer, status=PROCESSING)]
    ),
}


@pytest.mark.parametrize("write", REFUSED_WRITES.values(), ids=REFUSED_WRITES.keys())
def test_a_status_written_any_way_but_order_transition_is_refused_before_anything_is_written(write):
    # An allowed move (paid -> processing): what is refused is the path, not the step.
    order = place_order(status=PAID)

    assert_refused_with_nothing_written(lambda: write(order))

    assert Order.objects.get(pk=order.pk).status == PAID


def test_djangos_own_lookups_of_orders_use_the_guarded_queryset():
    assert Order._base_manager is Order.objects
    assert isinstance(Order._base_manager.all(), OrderQuerySet)


# --- a save of an instance loaded before a transition writes its other fields, never the status or version back ---


def _stale_save(stale, **kwargs):
    stale.note = "Leave at the door"
    stale.save(**kwargs)


def _save_of_an_instance_built_with_the_orders_pk(stale):
    # Built with the status as it now is, and the version left at its default.
    Order(
        pk=stale.pk,
        customer=stale.customer,
        number=stale.number,
        status=PROCESSING,
        note="Leave at the door",
        created_at=stale.created_at,
    ).save()


STALE_SAVES = {
    "save()": _stale_save,
    "save(update_fields=['note', 'status', 'version'])": lambda stale: _stale_save(
        stale, update_fields=["note", "status", "version"]
    ),
    "save() of an instance built with the order's pk": _save_of_an_instance_built_with_the_orders_pk,
}


@pytest.mark.parametrize("stale_save", STALE_SAVES.values(), ids=STALE_SAVES.keys())
def test_a_stale_save_of_other_fields_keeps_the_status_and_version_the_transition_wrote(stale_save):
    order = place_order(status=PAID)
    stale = Order.objects.get(pk=order.pk)
    moved = order_transition(order_id=order.pk, to_status=PROCESSING)
    before = database_state()

    stale_save(stale)

    assert Order.objects.values_list("status", "version", "note").get(pk=order.pk) == (
        PROCESSING,
        moved.version,
        "Leave at the door",
    )
    after = database_state()
    assert (after["events"], after["notifications"]) == (before["events"], before["notifications"])


# --- the ways that do change a status: each records its event and notification in the same transaction ---


def _admin_change_form(order, client):
    response = client.post(change_url(order), change_form_data(client, order, status=PROCESSING))
    assert response.status_code == 302


def _admin_action(order, client):
    response = client.post(
        reverse("admin:orders_order_changelist"), {"action": "mark_processing", "_selected_action": [order.pk]}
    )
    assert response.status_code == 302


RECORDED_WRITES = {
    "order_transition": lambda order, staff, client: order_transition(
        order_id=order.pk, to_status=PROCESSING, actor=staff
    ),
    "orders_transition_bulk": lambda order, staff, client: orders_transition_bulk(
        order_ids=[order.pk], to_status=PROCESSING, actor=staff
    ),
    "the admin's change form": lambda order, staff, client: _admin_change_form(order, client),
    "the admin's bulk action": lambda order, staff, client: _admin_action(order, client),
}


@pytest.mark.parametrize("write", RECORDED_WRITES.values(), ids=RECORDED_WRITES.keys())
def test_a_status_changed_through_order_transition_has_its_event_and_notification(write, staff, staff_client):
    order = place_order(status=PAID)

    write(order, staff, staff_client)

    assert_change_recorded(order, old_status=PAID, new_status=PROCESSING, actor=staff)


def test_a_scheduled_task_changes_the_status_through_order_transition_as_the_system():
    order = place_order(status=PAID)

    assert advance_fulfilment.delay(order.pk, PAID).get() is True

    assert_change_recorded(order, old_status=PAID, new_status=PROCESSING, actor=None)


def test_the_admin_changelist_edits_no_status_in_place(staff_client):
    order = place_order(status=PAID)
    before = database_state()

    # What a changelist with `list_editable = ["status"]` would post: the admin has none, so nothing is saved.
    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(order.pk),
            "form-0-status": PROCESSING,
            "_save": "Save",
        },
    )

    # The change list, shown again as it was: no form to edit a status in, and no word of anything saved.
    assert response.status_code == 200
    assert response.context["cl"].formset is None
    assert 'name="form-0-status"' not in response.text
    assert [str(message) for message in response.context["messages"]] == []
    assert database_state() == before


# --- writes that leave the status alone, and fixtures (the bench's generated data: tests/bench/test_data.py) ---


def test_saving_other_fields_is_allowed_and_notifies_nobody():
    order = place_order(status=PAID)
    notifications = Notification.objects.count()

    order.note = "Leave at the door"
    order.save()

    assert Order.objects.get(pk=order.pk).note == "Leave at the door"
    assert Notification.objects.count() == notifications


def test_an_order_loaded_without_its_status_saves_its_other_fields():
    order = place_order(status=PAID)

    deferred = Order.objects.only("note").get(pk=order.pk)
    assert deferred.status == PAID  # loaded now, on first use
    deferred.note = "Ring twice"
    deferred.save()

    assert Order.objects.values_list("status", "note").get(pk=order.pk) == (PAID, "Ring twice")


def test_loaddata_stores_fixture_statuses_as_they_are_and_records_nothing(tmp_path):
    order = place_order(status=PAID)
    before = database_state()
    fixture = tmp_path / "orders.json"
    at = "2026-01-01T00:00:00Z"
    fields = {"customer": order.customer_id, "total": "0.00", "created_at": at, "updated_at": at}
    rows = [(order.pk, order.number, "shipped"), (990001, "SO-990001", "delivered")]
    fixture.write_text(
        json.dumps(
            [
                {"model": "orders.order", "pk": pk, "fields": {**fields, "number": number, "status": status}}
                for pk, number, status in rows
            ]
        )
    )

    call_command("loaddata", str(fixture), verbosity=0)

    assert dict(Order.objects.filter(pk__in=[order.pk, 990001]).values_list("pk", "status")) == {
        order.pk: OrderStatus.SHIPPED,
        990001: OrderStatus.DELIVERED,
    }
    after = database_state()
    assert (after["events"], after["notifications"]) == (before["events"], before["notifications"])
