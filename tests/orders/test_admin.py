"""The order admin: status changes through the transition table, bulk actions, stale forms."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime

from notifications.receipts import notifications_mark_delivered
from orders.models import Order, OrderStatus
from tests.factories import StaffFactory, place_order

pytestmark = pytest.mark.django_db


def change_url(order):
    return reverse("admin:orders_order_change", args=[order.pk])


def change_form_data(client, order, **changes):
    """The change form's data exactly as the browser would post it, plus `changes`."""
    response = client.get(change_url(order))
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": management[name].value() for name in management.fields})
    data.update(changes)
    return data


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_list_shows_number_customer_status_total_and_updated(staff_client):
    order = place_order(status=OrderStatus.PAID)
    response = staff_client.get(reverse("admin:orders_order_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    for text in (order.number, order.customer.email, "Paid", str(order.total)):
        assert text in content


@pytest.mark.parametrize("query", ["number", "email", "first name", "last name", "full name", "username"])
def test_search_finds_orders_by_number_and_the_customer_s_email_name_or_username(staff_client, query):
    wanted, other = place_order(), place_order()
    customer = wanted.customer
    customer.first_name, customer.last_name = "Ada", "Lovelace"
    customer.save(update_fields=["first_name", "last_name"])
    term = {
        "number": wanted.number, "email": customer.email, "first name": "ada", "last name": "LOVELACE",
        "full name": "Ada Lovelace", "username": customer.username,
    }[query]  # fmt: skip
    response = staff_client.get(reverse("admin:orders_order_changelist"), {"q": term})
    shown = list(response.context["cl"].result_list)
    assert shown == [wanted]
    assert other not in shown


def test_filter_by_status(staff_client):
    paid, pending = place_order(status=OrderStatus.PAID), place_order()
    response = staff_client.get(reverse("admin:orders_order_changelist"), {"status__exact": "paid"})
    assert list(response.context["cl"].result_list) == [paid]
    assert pending not in response.context["cl"].result_list


def test_change_form_moves_status_through_transition_and_records_actor_message_and_note(staff_client, staff):
    order = place_order(status=OrderStatus.PAID)
    data = change_form_data(
        staff_client, order, status="processing", customer_message="Packing now", internal_note="Fragile, double box"
    )

    response = staff_client.post(change_url(order), data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING
    event = order.events.last()
    assert (event.old_status, event.new_status, event.actor, event.customer_message, event.internal_note) == (
        "paid",
        "processing",
        staff,
        "Packing now",
        "Fragile, double box",
    )


def test_change_form_offers_only_allowed_statuses(staff_client):
    order = place_order(status=OrderStatus.SHIPPED)
    response = staff_client.get(change_url(order))
    choices = [value for value, _ in response.context["adminform"].form.fields["status"].choices]
    assert choices == ["shipped", "delivered", "refunded"]


@pytest.mark.parametrize(
    ("status", "explained"),
    [
        (OrderStatus.PAID, "From paid it can go to: processing, cancelled, refunded."),
        (OrderStatus.CANCELLED, "Cancelled is final: no status can follow it."),
    ],
)
def test_change_form_explains_which_statuses_can_follow_the_current_one(staff_client, status, explained):
    response = staff_client.get(change_url(place_order(status=status)))
    assert explained in response.content.decode()


def test_a_stale_form_whose_status_is_no_longer_on_offer_says_someone_else_changed_it(client, staff):
    order = place_order(status=OrderStatus.PAID)
    first, second = client, client.__class__()
    first.force_login(staff)
    second.force_login(StaffFactory())
    stale_form = change_form_data(second, order, status="processing")
    for status in ("processing", "shipped"):  # the first staff member moves it on, past what the form offered
        assert first.post(change_url(order), change_form_data(first, order, status=status)).status_code == 302

    response = second.post(change_url(order), stale_form)

    form = response.context["adminform"].form
    assert response.status_code == 200
    assert "changed by someone else" in str(form.non_field_errors())
    assert "Select a valid choice" not in response.content.decode()
    assert [value for value, _ in form.fields["status"].choices] == ["shipped", "delivered", "refunded"]
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED


def test_forbidden_status_is_a_form_error_not_a_500(staff_client):
    order = place_order(status=OrderStatus.DELIVERED)
    events = order.events.count()

    response = staff_client.post(change_url(order), change_form_data(staff_client, order, status="pending_payment"))

    assert response.status_code == 200
    assert "status" in response.context["adminform"].form.errors
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED
    assert order.events.count() == events


def test_second_staff_saving_a_stale_form_gets_changed_by_someone_else(client, staff):
    order = place_order(status=OrderStatus.PAID)
    first, second = client, client.__class__()
    first.force_login(staff)
    second.force_login(StaffFactory())
    first_form = change_form_data(first, order, status="processing")
    second_form = change_form_data(second, order, status="cancelled")

    assert first.post(change_url(order), first_form).status_code == 302
    response = second.post(change_url(order), second_form)

    assert response.status_code == 200
    assert "changed by someone else" in str(response.context["adminform"].form.non_field_errors())
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING


def test_saving_without_a_status_change_writes_no_event(staff_client):
    order = place_order(status=OrderStatus.PAID)
    events = order.events.count()
    response = staff_client.post(change_url(order), change_form_data(staff_client, order))
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.version, order.events.count()) == (OrderStatus.PAID, 2, events)


def test_orders_cannot_be_added_or_deleted_in_the_admin(staff_client):
    order = place_order()
    assert staff_client.get(reverse("admin:orders_order_add")).status_code == 403
    assert staff_client.get(reverse("admin:orders_order_delete", args=[order.pk])).status_code == 403


@pytest.mark.parametrize(
    ("action", "from_status", "to_status"),
    [
        ("mark_paid", "pending_payment", "paid"),
        ("mark_processing", "paid", "processing"),
        ("mark_shipped", "processing", "shipped"),
        ("mark_delivered", "shipped", "delivered"),
        ("mark_cancelled", "pending_payment", "cancelled"),
    ],
)
def test_bulk_action_moves_each_order_and_records_each_event(staff_client, staff, action, from_status, to_status):
    orders = [place_order(status=from_status) for _ in range(3)]

    # Shipping asks for tracking numbers first (tests/orders/test_admin_tracking.py); confirmed without, it ships.
    confirmed = {"ship": "Mark shipped"} if action == "mark_shipped" else {}

    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": action, "_selected_action": [order.pk for order in orders], **confirmed},
    )

    assert response.status_code == 302
    assert messages_of(response) == [f"3 order(s) marked {OrderStatus(to_status).label.lower()}."]
    for order in orders:
        order.refresh_from_db()
        assert order.status == to_status
        assert order.events.last().actor == staff


def test_bulk_action_reports_how_many_changed_and_why_others_were_skipped(staff_client):
    processing = [place_order(status=OrderStatus.PROCESSING) for _ in range(2)]
    pending = place_order()

    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {
            "action": "mark_shipped",
            "_selected_action": [order.pk for order in [*processing, pending]],
            "ship": "Mark shipped",
        },
    )

    assert messages_of(response) == [
        "2 order(s) marked shipped.",
        f"1 order(s) skipped: Order {pending.number} cannot go from pending payment to shipped.",
    ]
    assert Order.objects.get(pk=pending.pk).status == OrderStatus.PENDING_PAYMENT


def test_customers_cannot_reach_the_admin(customer_client):
    response = customer_client.get(reverse("admin:orders_order_changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_bulk_action_with_tampered_ids_is_refused_with_a_message(staff_client):
    order = place_order(status=OrderStatus.PROCESSING)
    response = staff_client.post(
        reverse("admin:orders_order_changelist"), {"action": "mark_shipped", "_selected_action": [order.pk, "1 OR 1=1"]}
    )
    assert response.status_code == 302
    assert messages_of(response) == ["That selection is not valid; select orders and try again."]
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING


def test_history_shows_when_the_customer_saw_each_status_change(staff_client):
    order = place_order(status=OrderStatus.SHIPPED)  # the customer's seqs 1-3: paid, processing, shipped
    notifications_mark_delivered(up_to_seqs={order.customer_id: 2})
    delivered = order.customer.notifications.get(seq=2).delivered_at
    response = staff_client.get(change_url(order))
    content = response.content.decode()
    assert content.count("seen by the customer at") == 2
    assert f"seen by the customer at {date_format(localtime(delivered), 'DATETIME_FORMAT')}" in content
    assert content.count("not yet") == 1  # shipped: no page has shown it


def test_history_reads_the_receipts_in_one_query_however_long_it_is(staff_client):
    short, long = place_order(status=OrderStatus.PAID), place_order(status=OrderStatus.DELIVERED)
    for order in (short, long):
        notifications_mark_delivered(up_to_seqs={order.customer_id: 9})
    counts = []
    for order in (short, long):
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(change_url(order)).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
