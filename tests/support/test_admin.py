"""The staff inbox in the admin: who may see it, what each row says (as text), and its rows as JSON."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from support.admin import ConversationAdmin
from support.models import Conversation
from support.services import conversation_read
from tests.factories import StaffFactory, UserFactory, place_order
from tests.support.conftest import post

pytestmark = [pytest.mark.django_db]

INBOX = reverse("admin:support_conversation_changelist")
ROWS = reverse("admin:support_conversation_rows")


@pytest.fixture
def conversation(customer, staff):
    """An order whose customer wrote twice after a staff reply and a note."""
    order = place_order(customer=customer)
    post(customer, order, "Where is my parcel?")
    post(staff, order, "On its way")
    post(staff, order, "Carrier ticket 4411", internal=True)
    post(customer, order, "Still nothing\nat all")
    return order


def staff_with(*codenames):
    """A staff member who is no superuser, with just these permissions of the support app."""
    user = StaffFactory(is_superuser=False)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="support", codename__in=codenames))
    return user


# --- Who may see it -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [INBOX, ROWS])
def test_a_customer_is_sent_to_the_admin_login(customer_client, url):
    response = customer_client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("url", [INBOX, ROWS])
def test_anonymous_visitors_are_sent_to_the_admin_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("url", [INBOX, ROWS])
def test_staff_without_the_view_permission_are_refused(client, conversation, url):
    client.force_login(staff_with())

    assert client.get(url).status_code == 403


def test_staff_with_the_view_permission_see_the_inbox(client, conversation):
    client.force_login(staff_with("view_conversation"))

    response = client.get(INBOX)

    assert response.status_code == 200
    assert conversation.number in response.text


def test_the_inbox_adds_edits_and_deletes_nothing(staff_client):
    request = type("Request", (), {"user": StaffFactory()})()
    model_admin = ConversationAdmin(Conversation, None)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert staff_client.get(f"{INBOX}1/change/").status_code == 404


def test_the_admin_index_and_the_order_list_link_to_the_inbox(staff_client):
    assert f'href="{INBOX}"' in staff_client.get(reverse("admin:index")).text
    assert f'href="{INBOX}"' in staff_client.get(reverse("admin:orders_order_changelist")).text


def test_the_order_list_does_not_offer_the_inbox_to_staff_who_may_not_view_it(client):
    user = staff_with()
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(user)

    response = client.get(reverse("admin:orders_order_changelist"))

    assert response.status_code == 200
    assert f'href="{INBOX}"' not in response.text


# --- What a row says ------------------------------------------------------------------------------


def test_a_row_links_the_order_and_names_the_customer_the_last_message_its_author_and_the_wait(
    staff_client, conversation, customer
):
    response = staff_client.get(INBOX)

    [row] = response.context["queue"].rows
    html = response.text
    assert f'<a href="{reverse("admin:orders_order_change", args=[conversation.pk])}">{conversation.number}</a>' in html
    assert customer.get_full_name() in html
    assert "Still nothing at all" in html
    assert f"{customer.get_full_name()} (customer)" in html
    assert "Awaiting reply since" in html
    assert "Carrier ticket 4411" not in html  # a note is never the last message shown
    assert row.unread == 2  # the customer's two: staff's reply and note are no news to staff
    assert response.context["summary"] == "1 conversation awaiting a reply"


def test_markup_in_a_message_or_a_name_is_shown_as_text(staff_client, staff):
    customer = UserFactory(first_name="<b>Eve</b>", last_name="")
    order = place_order(customer=customer)
    post(customer, order, "<script>alert('x')</script> & <img src=x onerror=alert(1)>")

    html = staff_client.get(INBOX).text

    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>Eve</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html


def test_the_queue_shows_only_conversations_awaiting_a_reply_unless_all_are_asked_for(staff_client, customer, staff):
    waiting, answered = place_order(customer=customer), place_order(customer=customer)
    post(customer, waiting, "Hello?")
    post(customer, answered, "Hello?")
    post(staff, answered, "Hi!")

    awaiting_page = staff_client.get(INBOX).text
    all_page = staff_client.get(INBOX, {"show": "all"}).text

    assert waiting.number in awaiting_page and answered.number not in awaiting_page
    assert waiting.number in all_page and answered.number in all_page
    assert "2 conversations" in all_page


@pytest.mark.parametrize("url", [INBOX, ROWS])
def test_the_page_and_its_rows_read_in_as_many_queries_for_one_row_as_for_many(staff_client, staff, url):
    def conversation():
        order = place_order()
        post(order.customer, order, "Hi")
        post(staff, order, "Note", internal=True)

    def queries_to_get() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url).status_code == 200
        return len(queries)

    conversation()
    staff_client.get(url)  # the session's and the permissions' first reads out of the way
    one_row = queries_to_get()
    for _ in range(5):
        conversation()

    assert queries_to_get() == one_row


# --- The rows as JSON -------------------------------------------------------------------------------


def test_the_rows_endpoint_gives_each_row_as_data(staff_client, conversation, customer, staff):
    conversation_read(reader=staff, order_id=conversation.pk, seq=2)

    response = staff_client.get(ROWS)

    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert (body["show"], body["total"], body["summary"]) == ("awaiting", 1, "1 conversation awaiting a reply")
    [row] = body["rows"]
    last = row.pop("last_message")
    waiting_since = row.pop("waiting_since")
    assert row == {
        "order": {
            "id": conversation.pk,
            "number": conversation.number,
            "url": reverse("admin:orders_order_change", args=[conversation.pk]),
        },
        "customer": customer.get_full_name(),
        "awaiting_reply": True,
        "unread": 1,  # the customer's last; the note after the mark is staff's own
    }
    assert (last["excerpt"], last["author"]) == (
        "Still nothing at all",
        {"name": customer.get_full_name(), "is_staff": False},
    )
    assert waiting_since == last["created_at"]  # the customer's first unanswered message is its last


def test_the_rows_endpoint_takes_the_same_filter(staff_client, customer, staff):
    answered = place_order(customer=customer)
    post(customer, answered, "Hello?")
    post(staff, answered, "Hi!")

    assert staff_client.get(ROWS).json()["rows"] == []
    [row] = staff_client.get(ROWS, {"show": "all"}).json()["rows"]
    assert (row["order"]["id"], row["awaiting_reply"], row["last_message"]["author"]["is_staff"]) == (
        answered.pk,
        False,
        True,
    )
