"""Fuzzing the shop's and the admin's forms: tampered or random input is a form error, never a 500."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orders.carriers import CARRIERS, tracking_validate
from orders.models import Order, OrderEvent, OrderStatus
from shop.models import Product
from tests.factories import ProductFactory, StaffFactory, UserFactory, place_order

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# What a tampering client might put in any field.
values = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.sampled_from(["", "0", "-1", "1e9", "NaN", "1.5", " 3 ", "٣", "9" * 40, "\x00", "<script>", "null"]),
)


def state():
    """Everything a bad request must leave as it was."""
    return (
        Order.objects.count(),
        OrderEvent.objects.count(),
        list(Product.objects.order_by("pk").values_list("stock", flat=True)),
    )


@FUZZ
@given(quantity=values, extra=st.dictionaries(st.sampled_from(["price", "total", "product", "slug"]), values))
def test_add_to_cart_with_any_quantity_never_errors(client, quantity, extra):
    product = ProductFactory(slug="fuzzed-kettle", stock=5)
    response = client.post(reverse("shop:cart_add", args=[product.slug]), {"quantity": quantity, **extra})
    assert response.status_code in (302, 400)
    cart = client.session.get("cart", {})
    assert all(type(q) is int and 1 <= q <= 5 for q in cart.values())


@FUZZ
@given(quantity=values)
def test_cart_update_with_any_quantity_never_errors(client, quantity):
    product = ProductFactory(slug="fuzzed-mug")
    response = client.post(reverse("shop:cart_update", args=[product.slug]), {"quantity": quantity})
    assert response.status_code == (400 if "\x00" in quantity else 302)  # a NUL: shop.middleware


@FUZZ
@given(
    cart=st.one_of(
        st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=4), st.none()), max_size=3),
        st.lists(st.integers(), max_size=3),
        st.text(max_size=10),
    ),
    note=st.text(max_size=1100),
    extra=st.dictionaries(st.sampled_from(["price", "total", "customer", "status"]), values),
)
@example(cart={"²": 1}, note="", extra={})  # a digit to str.isdigit(), not to int(): once a 500
def test_checkout_with_a_tampered_session_cart_or_fields_never_errors(client, cart, note, extra):
    client.force_login(UserFactory(username="fuzzer"))
    ProductFactory(slug="fuzzed-beans", stock=3)
    session = client.session
    session["cart"] = cart
    session.save()
    before = state()

    response = client.post(reverse("shop:checkout"), {"note": note, **extra})

    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert state() == before


@FUZZ
@given(status=values | st.sampled_from(OrderStatus.values), version=values, note=st.text(max_size=1100))
def test_admin_change_form_with_any_values_never_errors(client, status, version, note):
    client.force_login(StaffFactory(username="fuzzing-staff"))
    order = Order.objects.first() or place_order(status=OrderStatus.PAID)
    before = state()
    data = {
        "status": status,
        "loaded_version": version,
        "customer_message": note,
        "internal_note": note,
        **{f"{prefix}-{field}": "0" for prefix in ("items", "events") for field in ("TOTAL_FORMS", "INITIAL_FORMS")},
    }

    response = client.post(reverse("admin:orders_order_change", args=[order.pk]), data)

    assert response.status_code in ((400,) if "\x00" in status + version + note else (200, 302))
    if response.status_code != 302:
        assert state() == before


@FUZZ
@given(
    action=values | st.sampled_from(["mark_shipped", "mark_cancelled", "delete_selected"]),
    ids=st.lists(values, max_size=4),
)
def test_admin_bulk_action_with_any_action_or_ids_never_errors(client, action, ids):
    client.force_login(StaffFactory(username="bulk-fuzzer"))
    response = client.post(reverse("admin:orders_order_changelist"), {"action": action, "_selected_action": ids})
    assert response.status_code in ((400,) if "\x00" in action + "".join(ids) else (200, 302))


# Tracking numbers near the carriers' forms: digits, the letters they use, spaces, markup and URL characters.
tracking_numbers = values | st.text(alphabet="0123456789JDZSGBUF <>&\"'/?#%", max_size=24)
carriers = values | st.sampled_from(list(CARRIERS))


def assert_shipped_as_entered_or_untouched(response, order, before, *, carrier: str, number: str) -> None:
    """A save ships the order with exactly the tracking the check makes of the input; anything else writes nothing."""
    order.refresh_from_db()
    if response.status_code == 302:
        assert order.status == OrderStatus.SHIPPED
        expected = tracking_validate(carrier=carrier, number=number) if carrier or number.strip() else None
        assert order.tracking == expected
    else:
        assert (order.status, order.tracking, state()) == (OrderStatus.PROCESSING, None, before)


@FUZZ
@given(carrier=carriers, number=tracking_numbers)
def test_admin_shipping_with_any_carrier_or_tracking_number_never_errors(client, carrier, number):
    client.force_login(StaffFactory(username="fuzzing-shipper"))
    order = place_order(status=OrderStatus.PROCESSING)
    before = state()
    data = {
        "status": "shipped",
        "loaded_version": order.version,
        "carrier": carrier,
        "tracking_number": number,
        **{f"{prefix}-{field}": "0" for prefix in ("items", "events") for field in ("TOTAL_FORMS", "INITIAL_FORMS")},
    }

    response = client.post(reverse("admin:orders_order_change", args=[order.pk]), data)

    assert response.status_code in ((400,) if "\x00" in carrier + number else (200, 302))
    assert_shipped_as_entered_or_untouched(response, order, before, carrier=carrier, number=number)


@FUZZ
@given(above=carriers, carrier=carriers, number=tracking_numbers)
def test_admin_mark_shipped_page_with_any_carriers_or_tracking_number_never_errors(client, above, carrier, number):
    client.force_login(StaffFactory(username="fuzzing-bulk-shipper"))
    order = place_order(status=OrderStatus.PROCESSING)
    before = state()
    data = {"carrier": above, f"carrier_{order.pk}": carrier, f"number_{order.pk}": number, "ship": "Mark shipped"}

    response = client.post(
        reverse("admin:orders_order_changelist"), {"action": "mark_shipped", "_selected_action": [order.pk], **data}
    )

    assert response.status_code in ((400,) if "\x00" in above + carrier + number else (200, 302))
    if response.status_code == 302 and not carrier and number.strip():
        carrier = above  # the row names no carrier: the one above counts for it
    assert_shipped_as_entered_or_untouched(response, order, before, carrier=carrier, number=number)
