"""One-click unsubscribe (notifications/unsubscribe.py and its view): a signed link turns that email off, no login.

GET only asks (mail scanners follow links); POST, as RFC 8058's one-click sends it with no cookie or CSRF token,
turns it off. A bad signature or a reused link shows a clear page and changes nothing.
"""

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from notifications.kinds import Channel
from notifications.models import NotificationPreference
from notifications.offline import offline_deliveries_run
from notifications.preferences import offline_channels_chosen
from notifications.unsubscribe import SALT, unsubscribe_token
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import UserFactory, place_order

pytestmark = pytest.mark.django_db


def link(user, topics=("order.shipped",), channel=Channel.EMAIL) -> str:
    return reverse("notifications:unsubscribe", args=[unsubscribe_token(user_id=user.pk, topics=list(topics),
                                                                        channel=channel)])  # fmt: skip


def one_click(url: str):
    """What a mail provider sends: a POST with the RFC 8058 body, no session, no CSRF token."""
    return Client(enforce_csrf_checks=True).post(url, {"List-Unsubscribe": "One-Click"})


def email_on(user, topic="order.shipped") -> bool:
    return Channel.EMAIL in offline_channels_chosen(user_id=user.pk)[topic]


def test_opening_the_link_asks_to_confirm_and_changes_nothing():
    customer = UserFactory()

    response = Client().get(link(customer))

    assert response.status_code == 200
    assert b"Stop these emails?" in response.content and b"An order is shipped" in response.content
    assert b'<form method="post">' in response.content
    assert email_on(customer) and not NotificationPreference.objects.exists()


def test_the_one_click_post_turns_that_email_off_without_login_or_csrf_token():
    customer = UserFactory()

    response = one_click(link(customer))

    assert response.status_code == 200 and b"You are unsubscribed" in response.content
    assert not email_on(customer)
    assert email_on(customer, "order.delivered")  # only what the link named
    assert Channel.PUSH in offline_channels_chosen(user_id=customer.pk)["order.shipped"]  # only its channel


def test_a_link_for_several_topics_turns_each_off():
    customer = UserFactory()

    one_click(link(customer, topics=("order.shipped", "order.delivered")))

    assert not email_on(customer) and not email_on(customer, "order.delivered")


def test_a_reused_link_says_already_unsubscribed_and_writes_nothing():
    customer = UserFactory()
    url = link(customer)
    one_click(url)
    before = list(NotificationPreference.objects.values("pk", "enabled", "updated_at"))

    again, opened = one_click(url), Client().get(url)

    for response in (again, opened):
        assert response.status_code == 200 and b"Already unsubscribed" in response.content
    assert list(NotificationPreference.objects.values("pk", "enabled", "updated_at")) == before


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        signing.dumps({"user": 1, "topics": ["order.shipped"], "channel": "email"}),  # no salt: another use's signature
        signing.dumps({"user": 1, "topics": ["order.shipped"], "channel": "email"}, salt="other"),
    ],
)
def test_a_bad_signature_shows_a_clear_page_and_changes_nothing(token):
    UserFactory()

    url = f"/notifications/unsubscribe/{token}/"
    for response in (Client().get(url), one_click(url)):
        assert response.status_code == 400
        assert b"This link does not work" in response.content and b"Nothing was changed" in response.content
    assert not NotificationPreference.objects.exists()


def test_an_altered_link_is_refused():
    customer, victim = UserFactory(), UserFactory()
    token = unsubscribe_token(user_id=customer.pk, topics=["order.shipped"], channel=Channel.EMAIL)
    signature = token.rsplit(":", 1)[1]
    forged = signing.dumps({"user": victim.pk, "topics": ["order.shipped"], "channel": "email"}, salt=SALT,
                           compress=True).rsplit(":", 1)[0] + ":" + signature  # fmt: skip

    response = one_click(f"/notifications/unsubscribe/{forged}/")

    assert response.status_code == 400 and email_on(victim) and email_on(customer)


@pytest.mark.parametrize(
    ("topics", "channel"), [(["order.no_such_status"], "email"), (["order.shipped"], "carrier-pigeon")]
)
def test_a_signed_link_naming_nothing_known_is_refused(topics, channel):
    customer = UserFactory()
    token = signing.dumps({"user": customer.pk, "topics": topics, "channel": channel}, salt=SALT, compress=True)

    response = one_click(f"/notifications/unsubscribe/{token}/")

    assert response.status_code == 400 and b"no longer applies" in response.content
    assert not NotificationPreference.objects.exists()


def test_unsubscribing_from_an_email_stops_the_next_one(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 0
    customer = UserFactory()
    first, second = (place_order(customer=customer, status=OrderStatus.PROCESSING) for _ in range(2))
    order_transition(order_id=first.pk, to_status=OrderStatus.SHIPPED)
    offline_deliveries_run()
    [email] = smtp.received
    url = email.message["List-Unsubscribe"].strip().strip("<>")

    response = one_click(url.removeprefix(settings.SITE_URL))
    order_transition(order_id=second.pk, to_status=OrderStatus.SHIPPED)
    offline_deliveries_run()

    assert response.status_code == 200
    assert len(smtp.received) == 1 and smtp.data_commands == 1
