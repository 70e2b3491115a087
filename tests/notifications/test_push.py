"""Browser push, the server's half (notifications/push.py): what reaches a real push service, and how often.

A push service of the test's own (tests/notifications/push_service.py) receives pywebpush's real requests on
127.0.0.1; each is decrypted with the browser's private key the test made (aes128gcm) and its VAPID header's
JWT is verified with the shop's public key. The service worker's half runs in Chromium (tests/browser/).
"""

import time

import pytest
from cryptography.exceptions import InvalidTag
from django.db import connection, transaction
from django.utils import timezone
from http_ece import ECEException

from notifications.kinds import Channel
from notifications.models import Notification, NotificationDelivery, PushSend, PushSubscription
from notifications.push import PushFailed, push_deliver, push_message
from notifications.push_subscriptions import push_subscription_parse, push_subscription_save
from notifications.services import notification_record
from tests.notifications.conftest import PUSH_CONTACT
from tests.notifications.push_service import BrowserKeys, LocalPushService, vapid_claims
from tests.notifications.support_replies import SUPPORT_REPLY

CONTACT = PUSH_CONTACT
PAYLOAD = {
    "title": "Order SO-100001 has shipped",
    "body": "It's on its way to you.",
    "url": "/orders/7/",
    "message": "Left at the door",
    "tracking": {"carrier": "DHL", "number": "JD014600006281", "url": "https://www.dhl.com/track?n=JD014600006281"},
}


def push_delivery(recipient, payload=PAYLOAD) -> NotificationDelivery:
    """A notification for `recipient` and its push delivery, as the fallback rule hands it to push_deliver."""
    with transaction.atomic():
        notification = notification_record(recipient_id=recipient.pk, kind=SUPPORT_REPLY.name, payload=payload)
    delivery, _ = NotificationDelivery.objects.get_or_create(
        notification=notification, channel=Channel.PUSH, defaults={"due_at": timezone.now()}
    )
    return delivery


def subscribe(user, service: LocalPushService, name: str) -> BrowserKeys:
    """One browser of `user`, subscribed at the service's endpoint `name`, as the preferences page does it."""
    keys = BrowserKeys.generate()
    push_subscription_save(user_id=user.pk, subscription=push_subscription_parse(data=keys.subscription_json(
        service.endpoint(name))))  # fmt: skip
    return keys


def expected_message(delivery, payload=PAYLOAD) -> dict:
    return {
        "title": payload["title"],
        "body": payload["body"],
        "url": payload["url"],
        "tag": f"notification-{delivery.notification.seq}",
        "icon": "/static/icons/notification-192.png",
        "tracking": {"carrier": "DHL", "number": "JD014600006281", "url": "https://www.dhl.com/track?n=JD014600006281"},
    }


@pytest.mark.django_db
def test_each_browser_of_the_recipient_gets_the_notification_encrypted_for_it_and_signed_by_the_shop(
    push_keys, push_service, customer, other_customer, settings
):
    laptop, phone = subscribe(customer, push_service, "laptop"), subscribe(customer, push_service, "phone")
    subscribe(other_customer, push_service, "someone-else")
    delivery = push_delivery(customer)

    before = int(time.time())
    push_deliver(delivery=delivery)

    assert sorted(request.path for request in push_service.requests) == ["/push/laptop", "/push/phone"]
    for name, keys in (("laptop", laptop), ("phone", phone)):
        (request,) = push_service.requests_to(name)
        assert keys.decrypt(request.body) == expected_message(delivery)
        assert request.headers["content-encoding"] == "aes128gcm"
        assert request.headers["ttl"] == str(settings.WEBPUSH_TTL)
        assert request.headers["urgency"] == "normal"
        claims = vapid_claims(request.headers["authorization"], public_key=push_keys.public_key)
        assert claims["aud"] == push_service.origin
        assert claims["sub"] == CONTACT
        assert before < claims["exp"] <= before + 24 * 3600  # RFC 8292: at most a day ahead
    sends = PushSend.objects.filter(delivery=delivery)
    assert sorted(sends.values_list("subscription__endpoint", "status_code")) == [
        (push_service.endpoint("laptop"), 201),
        (push_service.endpoint("phone"), 201),
    ]
    assert not PushSubscription.objects.filter(user=customer, last_pushed_at=None).exists()


@pytest.mark.django_db
def test_a_browser_can_decrypt_only_its_own_copy(push_keys, push_service, customer):
    laptop, phone = subscribe(customer, push_service, "laptop"), subscribe(customer, push_service, "phone")

    push_deliver(delivery=push_delivery(customer))

    with pytest.raises((ECEException, InvalidTag)):
        phone.decrypt(push_service.requests_to("laptop")[0].body)
    assert laptop.decrypt(push_service.requests_to("laptop")[0].body)["title"] == PAYLOAD["title"]


@pytest.mark.django_db
def test_the_message_carries_title_body_and_url_of_the_payload_and_nothing_else_of_it(customer):
    payload = {"title": "Support answered you", "body": "Hello", "url": "/support/", "message": "Hi",
               "internal_note": "never for the customer", "order": {"id": 3}}  # fmt: skip
    delivery = push_delivery(customer, payload)

    assert push_message(delivery.notification) == {
        "title": "Support answered you",
        "body": "Hello",
        "url": "/support/",
        "tag": f"notification-{delivery.notification.seq}",
        "icon": "/static/icons/notification-192.png",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "//evil.example/orders/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "orders/7/",
        None,
        7,
    ],
)
def test_a_stored_url_that_is_not_a_path_of_this_site_becomes_the_notification_centre(customer, url):
    # notification_record refuses such a url now; a row written before that rule still gets a safe link.
    stored = Notification(recipient=customer, seq=1, kind=SUPPORT_REPLY.name, payload={"title": "T", "url": url})

    assert push_message(stored)["url"] == "/notifications/"


@pytest.mark.django_db
@pytest.mark.parametrize("gone", [404, 410])
def test_a_browser_whose_push_service_says_gone_is_forgotten_and_the_others_still_get_it(
    push_keys, push_service, customer, gone
):
    subscribe(customer, push_service, "laptop")
    phone = subscribe(customer, push_service, "phone")
    push_service.answers["/push/laptop"] = gone

    push_deliver(delivery=push_delivery(customer))  # nothing to retry: raises nothing

    assert list(PushSubscription.objects.filter(user=customer).values_list("endpoint", flat=True)) == [
        push_service.endpoint("phone")
    ]
    assert phone.decrypt(push_service.requests_to("phone")[0].body)["title"] == PAYLOAD["title"]


@pytest.mark.django_db
def test_a_redelivered_delivery_pushes_nothing_twice_to_a_device_and_reaches_a_new_one_once(
    push_keys, push_service, customer
):
    subscribe(customer, push_service, "laptop")
    delivery = push_delivery(customer)
    push_deliver(delivery=delivery)
    subscribe(customer, push_service, "new-phone")

    push_deliver(delivery=delivery)
    push_deliver(delivery=delivery)

    assert [request.path for request in push_service.requests] == ["/push/laptop", "/push/new-phone"]
    assert PushSend.objects.filter(delivery=delivery).count() == 2


@pytest.mark.django_db
def test_a_refused_push_raises_and_the_retry_sends_it_to_that_browser_alone(push_keys, push_service, customer):
    subscribe(customer, push_service, "laptop")
    phone = subscribe(customer, push_service, "phone")
    push_service.answers["/push/phone"] = 503
    delivery = push_delivery(customer)

    with pytest.raises(PushFailed, match=r"subscription \d+: HTTP 503"):
        push_deliver(delivery=delivery)
    assert not PushSend.objects.filter(delivery=delivery, subscription__endpoint=push_service.endpoint("phone"))

    push_service.answers.pop("/push/phone")
    push_deliver(delivery=delivery)

    assert len(push_service.requests_to("laptop")) == 1
    assert len(push_service.requests_to("phone")) == 2  # the refused one, then the one it took
    assert phone.decrypt(push_service.requests_to("phone")[-1].body)["title"] == PAYLOAD["title"]


@pytest.mark.django_db
def test_a_push_left_unanswered_may_have_arrived_so_it_is_never_sent_again(push_keys, push_service, customer, settings):
    settings.WEBPUSH_TIMEOUT = 0.5
    subscribe(customer, push_service, "laptop")
    push_service.answers["/push/laptop"] = None
    delivery = push_delivery(customer)

    with pytest.raises(PushFailed, match="ReadTimeout"):
        push_deliver(delivery=delivery)
    push_deliver(delivery=delivery)  # the retry: nothing left to send

    assert len(push_service.requests_to("laptop")) == 1
    assert PushSend.objects.get(delivery=delivery).status_code is None


@pytest.mark.django_db
def test_a_push_service_that_cannot_be_reached_is_tried_again_next_time(push_keys, customer):
    stopped = LocalPushService().start()
    subscribe(customer, stopped, "laptop")
    stopped.stop()  # nothing listens on its port any more
    delivery = push_delivery(customer)

    with pytest.raises(PushFailed, match="ConnectionError"):
        push_deliver(delivery=delivery)

    assert not PushSend.objects.filter(delivery=delivery).exists()


@pytest.mark.django_db
def test_a_customer_with_no_browser_subscribed_gets_no_push_and_nothing_fails(push_keys, push_service, customer,
                                                                               other_customer):  # fmt: skip
    subscribe(other_customer, push_service, "someone-else")
    delivery = push_delivery(customer)

    push_deliver(delivery=delivery)

    assert not push_service.requests
    assert not PushSend.objects.exists()


@pytest.mark.django_db
def test_with_push_off_a_delivery_fails_saying_why(customer, settings):
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""

    with pytest.raises(PushFailed, match="browser push is off"):
        push_deliver(delivery=push_delivery(customer))


@pytest.mark.django_db(transaction=True)
def test_the_send_is_committed_before_its_request_leaves(push_keys, push_service, customer):
    subscribe(customer, push_service, "laptop")
    delivery = push_delivery(customer)
    seen_by_another_connection = []

    def look(request):
        # The push service's thread has a database connection of its own: it sees only what was committed.
        seen_by_another_connection.append(PushSend.objects.filter(delivery_id=delivery.pk).exists())
        connection.close()

    push_service.on_request.append(look)
    push_deliver(delivery=delivery)

    assert seen_by_another_connection == [True]


@pytest.mark.django_db(transaction=True)
def test_push_deliver_refuses_to_run_inside_a_transaction(push_keys, push_service, customer):
    subscribe(customer, push_service, "laptop")
    delivery = push_delivery(customer)

    with pytest.raises(RuntimeError), transaction.atomic():
        push_deliver(delivery=delivery)

    assert not push_service.requests
    assert not PushSend.objects.exists()
