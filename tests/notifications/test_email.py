"""The email channel (notifications/email.py), read back from a real SMTP server: headers, subject, escaping.

Names, notes and titles that carry line breaks must never become headers; every value reaches the HTML escaped.
"""

import pytest
from django.db import transaction
from django.urls import reverse

from notifications import kinds
from notifications.email import absolute_url, email_subject
from notifications.kinds import NotificationKind
from notifications.models import Notification, NotificationDelivery
from notifications.offline import offline_deliveries_run
from notifications.services import notification_record
from notifications.unsubscribe import unsubscribe_read
from orders.models import OrderStatus
from orders.notifications import ORDER_STATUS_CHANGED, order_status_payload
from orders.transitions import order_transition
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db

INJECTION = "\r\nBcc: thief@example.com\r\nX-Injected: yes"


@pytest.fixture(autouse=True)
def _due_at_once(settings):
    settings.NOTIFICATION_EMAIL_DELAY = 0


def shipped(customer, **kwargs):
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    return order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, **kwargs)


def assert_not_injected(received, customer) -> None:
    assert received.rcpt_tos == [customer.email]
    assert received.message["Bcc"] is None and received.message["X-Injected"] is None
    # The subject may show the words (as one line of text); no other header has them.
    assert all("thief" not in str(value) for name, value in received.message.items() if name != "Subject")


def test_an_email_is_plain_text_and_html_from_the_shop_with_its_message_id(smtp, settings):
    customer = UserFactory(first_name="Ada")
    shipped(customer)

    offline_deliveries_run()

    [email] = smtp.received
    assert email.message["From"] == settings.DEFAULT_FROM_EMAIL and email.message["To"] == customer.email
    assert email.message.get_content_type() == "multipart/alternative"
    assert email.text().startswith("Hello Ada,") and "Hello Ada," in email.html()
    assert email.message["Message-ID"] == NotificationDelivery.objects.get().message_id
    assert absolute_url(reverse("notifications:list")) in email.text()


def test_every_email_carries_one_click_unsubscribe_headers_for_its_topics(smtp):
    customer = UserFactory()
    shipped(customer)

    offline_deliveries_run()

    [email] = smtp.received
    assert email.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = email.message["List-Unsubscribe"].strip()  # folded onto its own line: it is longer than one
    assert header.startswith(f"<{absolute_url('/notifications/unsubscribe/')}") and header.endswith("/>")
    link = unsubscribe_read(token=header.removesuffix("/>").rsplit("/", 1)[1])
    assert (link.user_id, link.channel) == (customer.pk, "email")
    assert [topic.key for topic in link.topics] == ["order.shipped"]
    assert header[1:-1] in email.text() and header[1:-1] in email.html()


def test_a_title_with_line_breaks_makes_a_one_line_subject_and_no_header(smtp):
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order.status = OrderStatus.SHIPPED
    payload = order_status_payload(order, previous_status="processing") | {"title": "Order shipped" + INJECTION}
    with transaction.atomic():
        notification_record(recipient_id=customer.pk, kind=ORDER_STATUS_CHANGED.name, payload=payload)

    offline_deliveries_run()

    [email] = smtp.received
    assert email.message["Subject"] == "Order shipped Bcc: thief@example.com X-Injected: yes"
    assert_not_injected(email, customer)


def test_a_customer_message_with_line_breaks_stays_in_the_body(smtp):
    customer = UserFactory()
    shipped(customer, customer_message="Left at the door" + INJECTION)

    offline_deliveries_run()

    [email] = smtp.received
    assert_not_injected(email, customer)
    assert "Left at the door" in email.text()


def test_a_customer_name_with_line_breaks_stays_in_the_body(smtp):
    customer = UserFactory(first_name="Eve" + INJECTION)
    shipped(customer)

    offline_deliveries_run()

    [email] = smtp.received
    assert_not_injected(email, customer)


def test_an_address_with_line_breaks_is_refused_and_recorded_never_sent(smtp, settings):
    settings.NOTIFICATION_DELIVERY_MAX_ATTEMPTS = 1
    customer = UserFactory()
    shipped(customer)
    type(customer).objects.filter(pk=customer.pk).update(email=customer.email + INJECTION)

    run = offline_deliveries_run()

    assert run.failed == 1 and smtp.data_commands == 0
    delivery = NotificationDelivery.objects.get()
    assert delivery.state == "failed" and "Invalid address" in delivery.error


def test_markup_in_what_staff_wrote_reaches_the_html_escaped_and_the_text_as_written(smtp):
    customer = UserFactory()
    message = "<script>alert('x')</script> & <b>thanks</b>"
    shipped(customer, customer_message=message)

    offline_deliveries_run()

    [email] = smtp.received
    assert "<script>" not in email.html() and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in email.html()
    assert message in email.text()


@pytest.mark.parametrize(
    ("titles", "subject"),
    [
        (["Order 7 has shipped"], "Order 7 has shipped"),
        (["Order 7\r\nhas\tshipped"], "Order 7 has shipped"),
        (["a\u2028b\x85c\x0bd"], "a b c d"),
        (["  "], "News from the shop"),
        (["Paid", "Shipped"], "Shipped (and 1 more update)"),
        (["Paid", "Packed", "Shipped"], "Shipped (and 2 more updates)"),
        (["x" * 500], "x" * 150),
    ],
)
def test_a_subject_is_one_line_of_the_newest_title(titles, subject):
    assert email_subject(titles) == subject


@pytest.mark.parametrize("path", ["https://evil.example/x", "//evil.example/x", "javascript:alert(1)", None, ""])
def test_a_link_is_always_to_the_shop(path, settings):
    assert absolute_url(path) == settings.SITE_URL + "/"


def test_a_notification_with_no_email_part_of_its_own_gets_the_generic_one(smtp, monkeypatch):
    """A kind registers its email part; one that does not still gets its title, body, message and link."""
    customer = UserFactory()
    shipped(customer, customer_message="See you soon")
    generic = NotificationKind(
        name=ORDER_STATUS_CHANGED.name, topics=ORDER_STATUS_CHANGED.topics, topic_of=ORDER_STATUS_CHANGED.topic_of
    )
    monkeypatch.setitem(kinds._registered, generic.name, generic)  # the same kind, registered with no email part

    offline_deliveries_run()

    [email] = smtp.received
    notification = Notification.objects.filter(recipient=customer).latest("seq")
    for part in (email.text(), email.html()):
        assert notification.payload["title"] in part and "See you soon" in part
        assert absolute_url(notification.payload["url"]) in part
        assert "Total" not in part  # the orders' own part is not there
