"""Internal notes never reach the customer; the message to the customer does, as text (issue 21, item 7).

Before, the admin's one "Note for the history" was shown on the customer's order page after a reload. Now a
status change carries a message to the customer and an internal note; these tests write both, through every
way staff can, and walk every place a customer reads: their pages, their notification rows (the payload that
the socket, the notification centre and any later channel such as email render from) and their socket frames.
"""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from notifications.models import Notification
from orders.models import Order, OrderStatus
from orders.tasks import advance_fulfilment, cancel_unpaid_orders, confirm_payment
from orders.transitions import order_transition
from orders.transitions_bulk import orders_transition_bulk
from tests.factories import StaffFactory, UserFactory, place_order
from tests.notifications.test_consumer import frames_until_quiet, open_socket
from tests.orders.test_admin import change_form_data, change_url

pytestmark = pytest.mark.django_db

# What the probe wrote: a note only staff should read, and a message for the customer that is also markup.
INTERNAL_NOTE = "INTERNAL-7f3a: chargeback risk, <b>do not</b> upgrade shipping"
INTERNAL_WORDS = ("INTERNAL-7f3a", "chargeback risk")
CUSTOMER_MESSAGE = "<script>alert('to the customer')</script> Packed with care"
CUSTOMER_MESSAGE_AS_TEXT = escape(CUSTOMER_MESSAGE)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_no_internal_note(text: str) -> None:
    for words in INTERNAL_WORDS:
        assert words not in text


def change_in_admin(order, staff) -> None:
    """Staff save the change form with both fields filled in, as the probe did."""
    client = signed_in(staff)
    data = change_form_data(
        client, order, status="processing", customer_message=CUSTOMER_MESSAGE, internal_note=INTERNAL_NOTE
    )
    assert client.post(change_url(order), data).status_code == 302


def change_through_the_service(order, staff) -> None:
    order_transition(
        order_id=order.pk,
        to_status=OrderStatus.PROCESSING,
        actor=staff,
        customer_message=CUSTOMER_MESSAGE,
        internal_note=INTERNAL_NOTE,
    )


def change_in_bulk(order, staff) -> None:
    result = orders_transition_bulk(
        order_ids=[order.pk],
        to_status=OrderStatus.PROCESSING,
        actor=staff,
        customer_message=CUSTOMER_MESSAGE,
        internal_note=INTERNAL_NOTE,
    )
    assert [changed.pk for changed in result.changed] == [order.pk]


# Every way staff write a status change's message and note.
STAFF_CHANGES = [change_in_admin, change_through_the_service, change_in_bulk]

# Every page a customer reads about an order: (name, its url, whether it shows the message to the customer).
CUSTOMER_PAGES = [
    ("order page", lambda order: order.get_absolute_url(), True),
    ("my orders", lambda order: reverse("orders:list"), False),
    ("notification centre", lambda order: reverse("notifications:list"), True),
]


@pytest.fixture(params=STAFF_CHANGES, ids=lambda change: change.__name__)
def changed_order(request, customer, staff) -> Order:
    """A paid order of `customer` that staff moved to processing with a customer message and an internal note."""
    order = place_order(customer=customer, status=OrderStatus.PAID)
    request.param(order, staff)
    return order


def test_the_change_form_says_who_reads_each_field(staff_client):
    html = staff_client.get(change_url(place_order(status=OrderStatus.PAID))).content.decode()
    for label in (
        "Message to the customer",
        "Visible to the customer: on their order page and in their notification.",
        "Internal note",
        "Internal, never shown to the customer",
    ):
        assert label in html


def test_staff_see_the_message_and_the_internal_note_in_the_history_each_labelled(changed_order, staff):
    html = signed_in(staff).get(change_url(changed_order)).content.decode()

    assert "Message to the customer (shown to them)" in html
    assert "Internal note (never shown to the customer)" in html
    assert CUSTOMER_MESSAGE_AS_TEXT in html
    assert escape(INTERNAL_NOTE) in html


@pytest.mark.parametrize(("page", "url_of", "shows_message"), CUSTOMER_PAGES, ids=[page for page, *_ in CUSTOMER_PAGES])
def test_no_customer_page_shows_the_internal_note(changed_order, customer, page, url_of, shows_message):
    response = signed_in(customer).get(url_of(changed_order))

    assert response.status_code == 200
    assert_no_internal_note(response.content.decode())


@pytest.mark.parametrize(("page", "url_of", "shows_message"), CUSTOMER_PAGES, ids=[page for page, *_ in CUSTOMER_PAGES])
def test_the_message_to_the_customer_shows_as_text_where_intended(changed_order, customer, page, url_of, shows_message):
    html = signed_in(customer).get(url_of(changed_order)).content.decode()

    assert (CUSTOMER_MESSAGE_AS_TEXT in html) == shows_message
    assert "<script>alert(" not in html


def test_the_notification_payload_holds_the_message_and_nothing_internal(changed_order, customer):
    payload = Notification.objects.filter(recipient=customer).order_by("seq").last().payload

    # Exactly these keys: whatever renders a notification (socket, notification centre, email) reads only these.
    assert set(payload) == {"order", "title", "body", "message", "changed_by", "url"}
    assert set(payload["changed_by"]) == {"role", "label"}  # a role, never a name
    assert set(payload["order"]) == {"id", "number", "status", "status_label", "previous_status", "version"}
    assert payload["message"] == CUSTOMER_MESSAGE
    assert_no_internal_note(json.dumps(payload))


def test_no_stored_field_of_the_customers_notifications_holds_the_internal_note(changed_order, customer):
    rows = list(Notification.objects.filter(recipient=customer).values())

    assert len(rows) == 2  # paid, then processing (placing an order notifies nobody)
    assert_no_internal_note(json.dumps(rows, default=str))


@pytest.mark.django_db(transaction=True)
async def test_the_customers_socket_frames_carry_the_message_and_never_the_internal_note():
    customer, staff = await sync_to_async(UserFactory)(), await sync_to_async(StaffFactory)()
    order = await sync_to_async(place_order)(customer=customer, status=OrderStatus.PAID)
    customer_socket, hello = await open_socket(customer)
    staff_socket, _ = await open_socket(staff)

    await sync_to_async(change_in_admin)(order, staff)

    # Live, over the real channel layer, as the customer's socket sends them.
    live = await customer_socket.receive_from(timeout=5)
    assert json.loads(live)["message"] == CUSTOMER_MESSAGE
    assert_no_internal_note(live)
    # Staff's live news of the change carries no notes at all: they read them in the History.
    staff_frames = await frames_until_quiet(staff_socket)
    assert [frame["type"] for frame in staff_frames] == ["order_changed"]
    assert_no_internal_note(json.dumps(staff_frames))
    # Replayed from the database on reconnect.
    replaying_socket, _ = await open_socket(customer, query=f"?after={hello['last_seq']}")
    replayed = await frames_until_quiet(replaying_socket)
    assert [frame["message"] for frame in replayed] == [CUSTOMER_MESSAGE]
    assert_no_internal_note(json.dumps(replayed))
    for socket in (customer_socket, staff_socket, replaying_socket):
        await socket.disconnect()


def pay(order):
    confirm_payment.delay(order.pk).get()


def advance(order):
    advance_fulfilment.delay(order.pk, OrderStatus.PAID).get()


def cancel_unpaid(order):
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=31))
    cancel_unpaid_orders.delay().get()


# The system's changes: (task, status before, message to the customer, internal note). A note that tells the
# customer why (their order was cancelled) is for them; one that only says where a change came from is internal.
SYSTEM_CHANGES = [
    (pay, OrderStatus.PENDING_PAYMENT, "", "Payment confirmed"),
    (advance, OrderStatus.PAID, "", "Warehouse update"),
    (cancel_unpaid, OrderStatus.PENDING_PAYMENT, "Not paid within 30 minutes", ""),
]


@pytest.mark.parametrize(
    ("task", "status", "customer_message", "internal_note"),
    SYSTEM_CHANGES,
    ids=[task.__name__ for task, *_ in SYSTEM_CHANGES],
)
def test_system_notes_reach_the_customer_only_when_they_say_why(
    settings, customer, task, status, customer_message, internal_note
):
    settings.UNPAID_ORDER_TIMEOUT_MINUTES = 30
    order = place_order(customer=customer, status=status)

    task(order)

    event = order.events.last()
    assert (event.customer_message, event.internal_note) == (customer_message, internal_note)
    html = signed_in(customer).get(order.get_absolute_url()).content.decode()
    assert not internal_note or internal_note not in html
    assert customer_message in html
    assert Notification.objects.filter(recipient=customer).order_by("seq").last().payload["message"] == customer_message


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_existing_note_as_an_internal_one():
    executor = MigrationExecutor(connection)
    executor.migrate([("orders", "0001_initial")])
    try:
        old_apps = executor.loader.project_state([("orders", "0001_initial")]).apps
        order = place_order_before_the_split(old_apps)
        old_apps.get_model("orders", "OrderEvent").objects.create(
            order_id=order.pk,
            type="status_changed",
            old_status="pending_payment",
            new_status="paid",
            note="Shown before",
        )
    finally:
        # Forward again whatever happened: the tests after this one need the current schema.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    event = Order.objects.get(pk=order.pk).events.get()
    assert (event.customer_message, event.internal_note) == ("", "Shown before")


def place_order_before_the_split(old_apps):
    """An order row written with the models as they were before the migration."""
    customer = UserFactory()
    return old_apps.get_model("orders", "Order").objects.create(customer_id=customer.pk, number="SO-900001")
