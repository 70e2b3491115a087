"""The preferences page (notifications/views.py): every topic × channel, saved by a plain form, checked on the
server; and the links that lead to it."""

import re

import pytest
from django.urls import reverse

from notifications.kinds import Channel
from notifications.models import NotificationPreference, PushSubscription
from notifications.preferences import notification_preferences_save, notification_topics, offline_channels_chosen
from notifications.vapid import vapid_keys_generate

pytestmark = pytest.mark.django_db

URL = "/notifications/preferences/"


@pytest.fixture
def push_keys(settings):
    keys = vapid_keys_generate()
    settings.WEBPUSH_VAPID_PRIVATE_KEY = keys.private_key
    settings.WEBPUSH_VAPID_PUBLIC_KEY = keys.public_key
    settings.WEBPUSH_CONTACT = "mailto:ops@example.com"
    return keys


@pytest.fixture
def push_off(settings):
    settings.WEBPUSH_VAPID_PRIVATE_KEY = settings.WEBPUSH_VAPID_PUBLIC_KEY = settings.WEBPUSH_CONTACT = ""


@pytest.fixture
def subscribed(customer):
    return PushSubscription.objects.create(
        user=customer, endpoint="https://push.example.com/send/abc", p256dh="k", auth="a"
    )


def boxes(content: str, channel: str) -> dict[str, str]:
    """topic -> "on"/"off" (and "/locked" when disabled) for every checkbox of `channel` on the page."""
    found = {}
    for tag in re.findall(rf'<input type="checkbox"[^>]*name="{channel}"[^>]*>', content):
        topic = re.search(r'value="([^"]+)"', tag).group(1)
        found[topic] = ("on" if " checked" in tag else "off") + ("/locked" if " disabled" in tag else "")
    return found


def test_the_page_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_the_url_is_named(customer_client):
    assert reverse("notifications:preferences") == URL


def test_every_topic_is_a_row_with_in_app_always_on_and_email_as_chosen(customer_client, push_off):
    response = customer_client.get(URL)

    assert response.status_code == 200
    content = response.content.decode()
    for topic in notification_topics():
        assert f'<th scope="row">{topic.label}</th>' in content
    assert content.count('<td class="always">Always</td>') == len(notification_topics())
    assert boxes(content, "email") == {
        topic.key: "on" if Channel.EMAIL in topic.offline_defaults else "off" for topic in notification_topics()
    }


def test_without_vapid_keys_the_page_says_push_is_not_set_up_and_has_no_push_column_or_button(
    customer_client, push_off
):
    content = customer_client.get(URL).content.decode()

    assert "Browser notifications are not set up on this shop" in content
    assert boxes(content, "push") == {}
    assert "Turn on browser notifications" not in content
    assert "js/pages/preferences.js" not in content


def test_with_keys_the_page_offers_the_switch_and_shows_push_read_only_until_a_browser_subscribed(
    customer_client, push_keys
):
    content = customer_client.get(URL).content.decode()

    assert "Turn on browser notifications" in content
    assert f'data-public-key="{push_keys.public_key}"' in content
    assert 'data-subscription-url="/notifications/push/subscription/"' in content
    assert 'data-service-worker-url="/sw.js"' in content
    assert boxes(content, "push")["order.shipped"] == "on/locked"
    assert boxes(content, "push")["order.paid"] == "off/locked"
    assert "js/pages/preferences.js" in content


def test_once_a_browser_subscribed_the_push_column_can_be_changed(customer_client, push_keys, subscribed):
    content = customer_client.get(URL).content.decode()

    assert boxes(content, "push")["order.shipped"] == "on"


def test_saving_stores_every_topic_as_ticked_and_redirects_with_a_message(customer_client, customer, push_keys,
                                                                           subscribed):  # fmt: skip
    response = customer_client.post(URL, {"email": ["order.paid"], "push": ["order.shipped", "order.paid"]})

    assert response.status_code == 302 and response["Location"] == URL
    chosen = offline_channels_chosen(user_id=customer.pk)
    assert chosen["order.paid"] == {Channel.EMAIL, Channel.PUSH}
    assert chosen["order.shipped"] == {Channel.PUSH}
    assert all(chosen[topic.key] == set() for topic in notification_topics() if
               topic.key not in {"order.paid", "order.shipped"})  # fmt: skip
    page = customer_client.get(URL).content.decode()
    assert "Your notification preferences are saved" in page
    assert boxes(page, "email")["order.paid"] == "on"


def test_unticking_everything_turns_every_offline_channel_off(customer_client, customer, push_keys, subscribed):
    customer_client.post(URL, {})

    assert all(channels == set() for channels in offline_channels_chosen(user_id=customer.pk).values())


def test_before_any_browser_subscribed_saving_keeps_the_push_choices_whatever_is_posted(
    customer_client, customer, push_keys
):
    notification_preferences_save(user_id=customer.pk, chosen={"order.paid": {Channel.PUSH}})

    customer_client.post(URL, {"email": ["order.shipped"], "push": ["order.refunded"]})

    chosen = offline_channels_chosen(user_id=customer.pk)
    assert chosen["order.paid"] == {Channel.PUSH}
    assert chosen["order.shipped"] == {Channel.EMAIL, Channel.PUSH}  # push: still the default
    assert chosen["order.refunded"] == {Channel.PUSH}  # email off; push as it was, not as posted


def test_with_push_off_saving_email_keeps_the_push_choices(customer_client, customer, push_off):
    customer_client.post(URL, {"email": []})

    assert offline_channels_chosen(user_id=customer.pk)["order.shipped"] == {Channel.PUSH}


@pytest.mark.parametrize(
    "posted",
    [{"email": ["order.shipped", "order.teleported"]}, {"email": ["order.shipped", "<script>alert(1)</script>"]}],
    ids=["unknown topic", "markup"],
)
def test_an_unknown_topic_is_a_form_error_escaped_on_the_page_and_nothing_is_stored(customer_client, customer,
                                                                                     push_off, posted):  # fmt: skip
    response = customer_client.post(URL, posted)

    assert response.status_code == 400
    content = response.content.decode()
    assert "Select a valid choice" in content
    assert "<script>alert(1)</script>" not in content
    assert not NotificationPreference.objects.filter(user=customer).exists()
    assert boxes(content, "email")["order.shipped"] == "on"  # as submitted


def test_another_customers_choices_are_not_touched(customer_client, other_customer, push_off):
    customer_client.post(URL, {"email": []})

    assert not NotificationPreference.objects.filter(user=other_customer).exists()


def test_the_notification_centre_and_the_account_page_link_to_the_preferences(customer_client):
    for page in (reverse("notifications:list"), reverse("accounts:password_change")):
        assert f'href="{URL}"' in customer_client.get(page).content.decode(), page
