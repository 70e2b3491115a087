"""This browser's push subscription, sent by the preferences page (notifications/push_subscriptions.py and its
JSON endpoint): checked strictly, one row per browser, CSRF-checked, and a clear 400 with nothing stored for
anything malformed."""

import json

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from notifications.models import PushSubscription
from notifications.push_subscriptions import (
    ENDPOINT_MAX_LENGTH,
    PushSubscriptionInvalid,
    push_subscription_parse,
)
from notifications.vapid import b64url_encode, vapid_keys_generate
from tests.notifications.push_service import BrowserKeys

pytestmark = pytest.mark.django_db

URL = "/notifications/push/subscription/"
ENDPOINT = "https://fcm.googleapis.com/fcm/send/dGVzdC1zdWJzY3JpcHRpb24"


@pytest.fixture(autouse=True)
def push_keys(settings):
    keys = vapid_keys_generate()
    settings.WEBPUSH_VAPID_PRIVATE_KEY = keys.private_key
    settings.WEBPUSH_VAPID_PUBLIC_KEY = keys.public_key
    settings.WEBPUSH_CONTACT = "mailto:ops@example.com"
    return keys


def send(client, body, method="post", **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return getattr(client, method)(URL, data=data, content_type="application/json", **extra)


def subscription(endpoint=ENDPOINT, keys=None):
    return (keys or BrowserKeys.generate()).subscription_json(endpoint)


def test_a_browsers_subscription_is_stored_for_me_with_its_keys_and_user_agent(customer_client, customer):
    keys = BrowserKeys.generate()

    response = send(customer_client, subscription(keys=keys), HTTP_USER_AGENT="Chromium/140")

    assert response.status_code == 201
    assert response.json() == {"subscribed": True, "subscriptions": 1}
    row = PushSubscription.objects.get()
    assert (row.user, row.endpoint, row.p256dh, row.auth, row.user_agent) == (
        customer, ENDPOINT, keys.p256dh, keys.auth, "Chromium/140"
    )  # fmt: skip


def test_subscribing_again_from_the_same_browser_updates_its_one_row(customer_client, customer):
    send(customer_client, subscription())
    renewed = BrowserKeys.generate()

    response = send(customer_client, subscription(keys=renewed))

    assert response.status_code == 200
    assert list(PushSubscription.objects.values_list("endpoint", "p256dh", "auth")) == [
        (ENDPOINT, renewed.p256dh, renewed.auth)
    ]


def test_a_browser_another_customer_subscribed_moves_to_the_customer_now_using_it(client, customer, other_customer):
    client.force_login(other_customer)
    send(client, subscription())
    client.force_login(customer)

    send(client, subscription())

    assert list(PushSubscription.objects.values_list("user", flat=True)) == [customer.pk]


def test_padded_keys_are_stored_unpadded(customer_client):
    keys = BrowserKeys.generate()
    body = subscription(keys=keys)
    body["keys"] = {"p256dh": keys.p256dh + "=", "auth": keys.auth + "=="}

    assert send(customer_client, body).status_code == 201
    assert PushSubscription.objects.filter(p256dh=keys.p256dh, auth=keys.auth).exists()


def test_deleting_forgets_my_subscription_of_that_browser_only(customer_client, customer, other_customer):
    send(customer_client, subscription())
    send(customer_client, subscription("https://updates.push.services.mozilla.com/wpush/v2/other"))
    PushSubscription.objects.create(user=other_customer, endpoint="https://push.example.com/theirs", p256dh="k",
                                    auth="a")  # fmt: skip

    response = send(customer_client, {"endpoint": ENDPOINT}, method="delete")
    theirs = send(customer_client, {"endpoint": "https://push.example.com/theirs"}, method="delete")

    assert response.status_code == 200
    assert response.json() == {"subscribed": False, "deleted": True, "subscriptions": 1}
    assert theirs.json()["deleted"] is False
    assert set(PushSubscription.objects.values_list("endpoint", flat=True)) == {
        "https://updates.push.services.mozilla.com/wpush/v2/other",
        "https://push.example.com/theirs",
    }


def test_the_endpoint_needs_a_login_and_stores_nothing_without_one(client):
    response = send(client, subscription())

    assert response.status_code == 403
    assert "Log in" in response.json()["error"]
    assert not PushSubscription.objects.exists()


def test_the_endpoint_is_csrf_checked(customer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer)

    response = send(client, subscription())

    assert response.status_code == 403
    assert not PushSubscription.objects.exists()


def test_the_token_the_page_sends_in_its_header_passes_the_check(customer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer)
    page = client.get("/notifications/preferences/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]

    response = send(client, subscription(), HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 201


def test_with_push_off_nothing_is_stored(customer_client, settings):
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""

    response = send(customer_client, subscription())

    assert response.status_code == 404
    assert response.json() == {"error": "Browser notifications are not set up on this shop."}
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "patch"])
def test_other_methods_are_not_allowed(customer_client, method):
    assert getattr(customer_client, method)(URL).status_code == 405


def _point_off_curve():
    return b64url_encode(b"\x04" + bytes(range(64)))


MALFORMED = {
    "not json": ("{endpoint", "The body must be JSON."),
    "not utf-8": (b"\x80{}", "The body must be JSON."),
    "nested past the parser's depth": ("[" * 2000 + "]" * 2000, "The body must be JSON."),
    "a list": ([ENDPOINT], "the body must be a JSON object"),
    "no endpoint": ({"keys": {}}, "endpoint: missing"),
    "endpoint not text": ({"endpoint": 7}, "endpoint: missing"),
    "plain http": ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "endpoint: must be an https: URL"),
    "another scheme": ({"endpoint": "ftp://fcm.googleapis.com/x"}, "endpoint: not a valid URL"),
    "javascript": ({"endpoint": "javascript:alert(1)"}, "endpoint: not a valid URL"),
    "relative": ({"endpoint": "/fcm/send/x"}, "endpoint: not a valid URL"),
    "too long": ({"endpoint": "https://fcm.googleapis.com/" + "a" * ENDPOINT_MAX_LENGTH}, "endpoint: longer than"),
    "a nul": ({"endpoint": "https://fcm.googleapis.com/a\x00b"}, "printable ASCII"),
    "a lone surrogate": ('{"endpoint": "https://fcm.googleapis.com/\\ud800"}', "printable ASCII"),
    "a space": ({"endpoint": "https://fcm.googleapis.com/a b"}, "printable ASCII"),
    "non-ascii": ({"endpoint": "https://fcm.googleapis.com/é"}, "printable ASCII"),
    "credentials": ({"endpoint": "https://user:pw@fcm.googleapis.com/x"}, "credentials"),
    "a fragment": ({"endpoint": "https://fcm.googleapis.com/x#y"}, "fragment"),
    "another port": ({"endpoint": "https://fcm.googleapis.com:8443/x"}, "the https port"),
    "an ip address": ({"endpoint": "https://10.0.0.5/x"}, "not an IP address"),
    "an ipv6 address": ({"endpoint": "https://[::1]/x"}, "not an IP address"),
    "localhost": ({"endpoint": "https://localhost/x"}, "public host"),
    "a bare name": ({"endpoint": "https://intranet/x"}, "endpoint: "),
    "loopback on https": ({"endpoint": "https://127.0.0.1/x"}, "not an IP address"),
    "no keys": ({"endpoint": ENDPOINT}, "keys: missing"),
    "keys not an object": ({"endpoint": ENDPOINT, "keys": "k"}, "keys: missing"),
    "no p256dh": ({"endpoint": ENDPOINT, "keys": {"auth": b64url_encode(bytes(16))}}, "keys.p256dh"),
    "p256dh standard base64": ({"p256dh": "+/" * 43 + "A"}, "keys.p256dh"),
    "p256dh compressed": ({"p256dh": b64url_encode(b"\x02" + bytes(32))}, "keys.p256dh"),
    "p256dh off the curve": ({"p256dh": _point_off_curve()}, "keys.p256dh"),
    "p256dh not text": ({"p256dh": 65}, "keys.p256dh"),
    "auth too short": ({"auth": b64url_encode(bytes(15))}, "keys.auth: must be 16 bytes"),
    "auth too long": ({"auth": b64url_encode(bytes(17))}, "keys.auth: must be 16 bytes"),
    "auth not base64url": ({"auth": "!" * 22}, "keys.auth"),
    "auth missing": ({"auth": None}, "keys.auth"),
}


def malformed_body(body):
    """A valid subscription with the given change: top-level keys replace, `p256dh`/`auth` replace a key."""
    if not isinstance(body, dict) or "endpoint" in body or "keys" in body:
        return body
    valid = subscription()
    valid["keys"].update(body)
    return valid


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_subscription_is_a_400_saying_what_is_wrong_and_nothing_is_stored(customer_client, name):
    body, complaint = MALFORMED[name]

    response = send(customer_client, malformed_body(body))

    assert response.status_code in (400, 413)
    error = response.json()["error"]
    if complaint:
        assert complaint in error
    assert not PushSubscription.objects.exists()


def test_a_body_over_the_size_bound_is_refused_unread(customer_client):
    body = subscription()
    body["padding"] = "x" * 5000

    response = send(customer_client, body)

    assert response.status_code == 413
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize("body", [None, [], "endpoint", {"endpoint": ""}, {"endpoint": 3}])
def test_deleting_without_an_endpoint_is_a_400(customer_client, body):
    response = send(customer_client, json.dumps(body), method="delete")

    assert response.status_code == 400
    assert "endpoint" in response.json()["error"]


def test_a_loopback_endpoint_passes_only_where_the_setting_allows_it(settings):
    loopback = subscription("http://127.0.0.1:8123/push/laptop")
    settings.WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS = True
    assert push_subscription_parse(data=loopback).endpoint == "http://127.0.0.1:8123/push/laptop"

    settings.WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS = False
    with pytest.raises(PushSubscriptionInvalid, match="must be an https: URL"):
        push_subscription_parse(data=loopback)


@pytest.mark.parametrize(
    "endpoint",
    [
        ENDPOINT,
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
        "https://web.push.apple.com/QGuQyavXutnMH",
        "https://fcm.googleapis.com:443/fcm/send/x",
    ],
)
def test_the_push_services_of_the_browsers_pass(endpoint, settings):
    settings.WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS = False
    assert push_subscription_parse(data=subscription(endpoint)).endpoint == endpoint


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
BASE64URL_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=100)
SUBSCRIPTION_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "endpoint": JSON_VALUES | st.text(max_size=60).map(lambda tail: ENDPOINT + tail),
        "keys": JSON_VALUES | st.fixed_dictionaries({}, optional={"p256dh": JSON_VALUES | BASE64URL_TEXT,
                                                                  "auth": JSON_VALUES | BASE64URL_TEXT}),
    },
)  # fmt: skip


@given(data=JSON_VALUES | SUBSCRIPTION_LIKE)
def test_whatever_a_page_sends_is_a_checked_subscription_or_a_refusal_saying_why(data):
    try:
        parsed = push_subscription_parse(data=data)
    except PushSubscriptionInvalid as error:
        assert str(error)
    else:
        assert parsed.endpoint == data["endpoint"] and len(parsed.endpoint) <= ENDPOINT_MAX_LENGTH
