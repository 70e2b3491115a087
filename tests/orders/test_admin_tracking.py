"""Staff give a shipment's carrier and tracking number in the admin: the change form and the "mark shipped" page."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from notifications.models import Notification
from orders.models import Order, OrderEvent, OrderStatus
from orders.transitions import order_transition
from tests.factories import place_order
from tests.orders.test_admin import change_form_data, change_url, messages_of

pytestmark = pytest.mark.django_db

DHL_NUMBER = "00340434161094042557"
UPS_NUMBER = "1Z999AA10123456784"
CHANGELIST = reverse("admin:orders_order_changelist")


def stored(*orders) -> tuple:
    """Everything a refused form must leave as it was."""
    rows = list(
        Order.objects.filter(pk__in=[order.pk for order in orders])
        .order_by("pk")
        .values_list("status", "version", "carrier", "tracking_number")
    )
    return rows, OrderEvent.objects.count(), Notification.objects.count()


# --- The change form ------------------------------------------------------------------------------------------


def test_change_form_ships_with_the_carrier_and_number_staff_entered_and_the_customer_is_told(staff_client, staff):
    order = place_order(status=OrderStatus.PROCESSING)
    data = change_form_data(staff_client, order, status="shipped", carrier="ups", tracking_number="1z999aa10123456784")

    response = staff_client.post(change_url(order), data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    order.refresh_from_db()
    assert (order.status, order.carrier, order.tracking_number) == ("shipped", "ups", UPS_NUMBER)
    event = order.events.last()
    assert (event.actor, event.carrier, event.tracking_number) == (staff, "ups", UPS_NUMBER)
    payload = Notification.objects.filter(recipient=order.customer).latest("seq").payload
    assert payload["tracking"] == {
        "carrier": "UPS",
        "number": UPS_NUMBER,
        "url": f"https://www.ups.com/track?tracknum={UPS_NUMBER}",
    }


@pytest.mark.parametrize(
    ("status", "carrier", "number", "field", "error"),
    [
        ("shipped", "hermes", DHL_NUMBER, "carrier", "Select a valid choice."),
        ("shipped", "dhl", "0034<script>0434", "tracking_number", "That is not a DHL tracking number"),
        ("shipped", "dhl", "1" * 41, "tracking_number", "at most 40 characters"),
        ("shipped", "", DHL_NUMBER, "carrier", "Choose the carrier of this tracking number."),
        ("shipped", "dhl", "", "tracking_number", "Enter the tracking number DHL gave you."),
        ("cancelled", "dhl", DHL_NUMBER, "tracking_number", "when the order is marked shipped"),
        ("processing", "dhl", DHL_NUMBER, "tracking_number", "when the order is marked shipped"),
    ],
    ids=[
        "unknown-carrier",
        "markup-in-number",
        "too-long",
        "number-without-carrier",
        "carrier-without-number",
        "with-another-move",
        "with-no-move",
    ],  # fmt: skip
)
def test_change_form_refuses_bad_tracking_with_a_field_error_and_writes_nothing(
    staff_client, status, carrier, number, field, error
):
    order = place_order(status=OrderStatus.PROCESSING)
    before = stored(order)
    data = change_form_data(staff_client, order, status=status, carrier=carrier, tracking_number=number)

    response = staff_client.post(change_url(order), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and error in errors[field][0]
    assert stored(order) == before
    assert escape(error) in response.content.decode()  # shown to staff, beside the field


def test_a_shipped_orders_change_form_shows_its_tracking_link_in_the_status_and_the_history(staff_client):
    order = place_order(status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="dhl", tracking_number=DHL_NUMBER)

    response = staff_client.get(change_url(order))

    content = response.content.decode()
    link = (
        f'<a href="https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&amp;tracking-id='
        f'{DHL_NUMBER}" target="_blank" rel="noopener noreferrer">DHL {DHL_NUMBER}</a>'
    )
    assert content.count(link) == 2  # the order's tracking, and the shipped step of its history
    assert 'name="tracking_number"' not in content  # it shipped: nothing more to enter


def test_an_order_that_can_ship_offers_the_carrier_and_number_inputs(staff_client):
    order = place_order(status=OrderStatus.PROCESSING)

    content = staff_client.get(change_url(order)).content.decode()

    assert 'name="carrier"' in content and 'name="tracking_number"' in content
    assert '<option value="colissimo">La Poste / Colissimo</option>' in content


def test_a_carrier_label_with_markup_is_text_in_the_admin(staff_client, markup_carrier):
    order = place_order(status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, carrier="probe", tracking_number="PROBE1")

    content = staff_client.get(change_url(order)).content.decode()

    assert content.count(f"{escape(markup_carrier.label)} PROBE1</a>") == 2
    assert markup_carrier.label not in content


# --- The bulk "mark shipped" action ----------------------------------------------------------------------------


def ship_page(client, orders, **data):
    """Choose "Mark selected orders as shipped" for `orders` in the change list; with `data`, confirm the page."""
    confirm = {"ship": "Mark shipped", **data} if data else {}
    return client.post(CHANGELIST, {"action": "mark_shipped", "_selected_action": [o.pk for o in orders], **confirm})


def test_mark_shipped_first_lists_each_order_that_can_ship_with_its_fields_and_changes_nothing(staff_client):
    processing = [place_order(status=OrderStatus.PROCESSING) for _ in range(2)]
    pending = place_order()
    before = stored(*processing, pending)

    response = ship_page(staff_client, [*processing, pending])

    assert response.status_code == 200
    assert "admin/orders/order/ship_orders.html" in [template.name for template in response.templates]
    content = response.content.decode()
    for order in processing:
        assert f'name="carrier_{order.pk}"' in content and f'name="number_{order.pk}"' in content
    assert f'name="number_{pending.pk}"' not in content
    assert f"<li>{pending.number} (pending payment)</li>" in content
    for order in [*processing, pending]:
        assert f'name="_selected_action" value="{order.pk}"' in content
    assert stored(*processing, pending) == before


def test_mark_shipped_with_one_carrier_for_all_and_each_orders_number_ships_each_with_its_tracking(staff_client, staff):
    first, second, by_ups, untracked = (place_order(status=OrderStatus.PROCESSING) for _ in range(4))

    response = ship_page(
        staff_client,
        [first, second, by_ups, untracked],
        carrier="dhl",
        **{f"number_{first.pk}": DHL_NUMBER, f"number_{second.pk}": "0034 0434 1610 9404 2558"},
        **{f"carrier_{by_ups.pk}": "ups", f"number_{by_ups.pk}": UPS_NUMBER},
    )

    assert response.status_code == 302
    assert messages_of(response) == ["4 order(s) marked shipped."]
    shipped = {o.pk: (o.status, o.carrier, o.tracking_number) for o in Order.objects.all()}
    assert shipped == {
        first.pk: ("shipped", "dhl", DHL_NUMBER),
        second.pk: ("shipped", "dhl", "00340434161094042558"),
        by_ups.pk: ("shipped", "ups", UPS_NUMBER),
        untracked.pk: ("shipped", "", ""),
    }
    assert {event.actor for event in OrderEvent.objects.filter(new_status="shipped")} == {staff}
    payloads = {
        n.payload["order"]["id"]: n.payload for n in Notification.objects.filter(payload__order__status="shipped")
    }
    assert payloads[by_ups.pk]["tracking"]["carrier"] == "UPS"
    assert "tracking" not in payloads[untracked.pk]


@pytest.mark.parametrize(
    ("fields", "field", "error"),
    [
        ({"carrier": "dhl", "number_{first}": "0034<0434"}, "number_{first}", "That is not a DHL tracking number"),
        ({"carrier": "", "number_{first}": DHL_NUMBER}, "carrier_{first}", "Choose the carrier"),
        ({"carrier_{first}": "ups"}, "number_{first}", "Enter the tracking number UPS gave you."),
        ({"carrier_{first}": "hermes", "number_{first}": DHL_NUMBER}, "carrier_{first}", "Select a valid choice."),
        ({"carrier": "hermes", "number_{first}": DHL_NUMBER}, "carrier", "Select a valid choice."),
        ({"carrier": "dhl", "number_{first}": "9" * 41}, "number_{first}", "at most 40 characters"),
        ({"carrier": "dhl"}, "carrier", "Enter the tracking numbers of the orders that ship with this carrier."),
    ],
    ids=[
        "markup-in-number",
        "number-without-carrier",
        "row-carrier-without-number",
        "unknown-row-carrier",
        "unknown-carrier",
        "too-long",
        "carrier-without-any-number",
    ],  # fmt: skip
)
def test_mark_shipped_with_bad_tracking_shows_the_page_again_with_the_error_and_ships_no_order(
    staff_client, fields, field, error
):
    first, second = (place_order(status=OrderStatus.PROCESSING) for _ in range(2))
    before = stored(first, second)
    # The second row is fine: one bad row still ships nothing, so staff fix it and send the page again.
    data = {"carrier_{second}": "ups", "number_{second}": UPS_NUMBER, **fields}

    response = ship_page(
        staff_client, [first, second], **{name.format(first=first.pk, second=second.pk): v for name, v in data.items()}
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    name = field.format(first=first.pk)
    assert list(errors) == [name] and error in errors[name][0]
    assert escape(error) in response.content.decode()
    assert stored(first, second) == before


def test_mark_shipped_with_no_order_that_can_ship_says_why_at_once(staff_client):
    pending, delivered = place_order(), place_order(status=OrderStatus.DELIVERED)
    before = stored(pending, delivered)

    response = ship_page(staff_client, [pending, delivered])

    assert response.status_code == 302
    assert messages_of(response) == [
        f"2 order(s) skipped: Order {pending.number} cannot go from pending payment to shipped. "
        f"Order {delivered.number} cannot go from delivered to shipped."
    ]
    assert stored(pending, delivered) == before


def test_mark_shipped_reports_an_order_someone_else_shipped_after_the_page_was_shown(staff_client):
    mine, theirs = (place_order(status=OrderStatus.PROCESSING) for _ in range(2))
    assert ship_page(staff_client, [mine, theirs]).status_code == 200
    order_transition(order_id=theirs.pk, to_status=OrderStatus.SHIPPED, carrier="dpd", tracking_number="01234567890123")

    response = ship_page(
        staff_client,
        [mine, theirs],
        carrier="dhl",
        **{f"number_{mine.pk}": DHL_NUMBER, f"number_{theirs.pk}": "00340434161094042558"},
    )

    assert messages_of(response) == [
        "1 order(s) marked shipped.",
        f"1 order(s) skipped: Order {theirs.number} cannot go from shipped to shipped.",
    ]
    assert Order.objects.get(pk=theirs.pk).tracking_number == "01234567890123"  # what its shipper entered stays


def test_mark_shipped_refuses_a_selection_too_long_for_one_page_and_changes_nothing(staff_client, monkeypatch):
    monkeypatch.setattr("orders.admin.SHIP_AT_ONCE_MAX", 2)
    orders = [place_order(status=OrderStatus.PROCESSING) for _ in range(3)]
    before = stored(*orders)

    response = ship_page(staff_client, orders)

    assert response.status_code == 302
    assert messages_of(response) == ["Select at most 2 orders to ship at once; nothing was changed."]
    assert stored(*orders) == before
