"""Browser push (Web Push with VAPID, through pywebpush): a notification's push delivery, sent to each of its
recipient's browsers at most once.

The fallback rule (notifications/offline.py) decides when a push delivery is due and calls `push_deliver`;
what the service worker (static/js/sw.js) shows is `push_message`. Keys and contact: WEBPUSH_* settings.
"""

import json
import logging

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.templatetags.static import static
from django.utils import timezone
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from urllib3.exceptions import NewConnectionError

from notifications.frames import same_site_path
from notifications.models import Notification, NotificationDelivery, PushSend, PushSubscription

logger = logging.getLogger(__name__)

# The push service's answers that mean the subscription is gone for good (RFC 8030, 7.3).
SUBSCRIPTION_GONE = {404, 410}
TRACKING_FIELDS = ("carrier", "number", "url")


class PushFailed(Exception):
    """A push service refused a push or gave no answer; the caller retries the delivery (devices already sent
    to are skipped)."""


def push_enabled() -> bool:
    """Whether the shop can push at all: its VAPID keys are set (shop/settings.py checks they are a pair)."""
    return bool(settings.WEBPUSH_VAPID_PRIVATE_KEY)


def push_message(notification: Notification) -> dict:
    """What the service worker shows for a notification: title, body, the page a click opens, and the tracking
    link of a shipped order when its payload has one. Built from the payload alone, like every other channel."""
    payload = notification.payload
    message = {
        "title": str(payload.get("title") or "Shop"),
        "body": str(payload.get("body") or ""),
        "url": same_site_path(payload.get("url"), default="/notifications/"),  # a push never leads elsewhere
        "tag": f"notification-{notification.seq}",
        "icon": static("icons/notification-192.png"),  # a bitmap: system notifications show no SVG
    }
    tracking = payload.get("tracking")
    if isinstance(tracking, dict):
        message["tracking"] = {field: str(tracking[field]) for field in TRACKING_FIELDS if tracking.get(field)}
    return message


def _push_send_claim(*, delivery: NotificationDelivery, subscription: PushSubscription) -> PushSend | None:
    """Write this device's send before its request, committed, so a redelivered task never repeats it.

    None if a send to this device exists (an earlier run's) or the subscription was deleted meanwhile.
    Durable: inside a caller's transaction the row would not be committed when the request goes out.
    """
    try:
        with transaction.atomic(durable=True):
            send, created = PushSend.objects.get_or_create(delivery=delivery, subscription=subscription)
    except IntegrityError:  # the subscription was deleted after we listed it
        return None
    return send if created else None


def _never_reached(error: Exception) -> bool:
    """Whether a failed request certainly never reached the push service, so sending it again cannot repeat it."""
    # An error answer (or a redirect, never followed) came back, the message was refused before sending, or the
    # connection was never made.
    if isinstance(error, (WebPushException, requests.TooManyRedirects, requests.ConnectTimeout)):
        return True
    if not isinstance(error, requests.ConnectionError) or not error.args:
        return False
    return isinstance(getattr(error.args[0], "reason", None), NewConnectionError)  # urllib3's, wrapped by requests


def _push_post(*, subscription: PushSubscription, data: str, vapid: Vapid, session: requests.Session) -> int:
    """One encrypted, VAPID-signed request to the browser's push service; its status code (2xx)."""
    response = webpush(
        subscription_info={"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh,
                                                                       "auth": subscription.auth}},
        data=data,
        vapid_private_key=vapid,
        vapid_claims={"sub": settings.WEBPUSH_CONTACT},  # pywebpush adds `aud` (the endpoint's origin) and `exp`
        ttl=settings.WEBPUSH_TTL,
        timeout=settings.WEBPUSH_TIMEOUT,
        headers={"Urgency": "normal"},
        requests_session=session,
    )  # fmt: skip
    return response.status_code


def push_deliver(*, delivery: NotificationDelivery) -> None:
    """Push a delivery's notification to every browser its recipient subscribed, each at most once.

    A browser whose push service answers 404 or 410 has unsubscribed: its row is deleted. Any other failure
    raises PushFailed once every device was tried; a device the request certainly never reached is tried again
    on the next call, one that may have got it (no answer in time) is not. Call it outside a transaction.
    """
    if not push_enabled():
        raise PushFailed("browser push is off: the WEBPUSH_ settings are not set")
    notification = delivery.notification
    subscriptions = list(PushSubscription.objects.filter(user_id=notification.recipient_id).order_by("pk"))
    if not subscriptions:
        return
    data = json.dumps(push_message(notification), separators=(",", ":"))
    vapid = Vapid.from_string(settings.WEBPUSH_VAPID_PRIVATE_KEY)
    failures = []
    with requests.Session() as session:
        session.max_redirects = 0  # a push service answers; one sending us on could point anywhere (SSRF)
        for subscription in subscriptions:
            send = _push_send_claim(delivery=delivery, subscription=subscription)
            if send is None:
                continue
            try:
                status_code = _push_post(subscription=subscription, data=data, vapid=vapid, session=session)
            except (WebPushException, requests.RequestException) as error:
                status_code = getattr(getattr(error, "response", None), "status_code", None)
                if status_code in SUBSCRIPTION_GONE:
                    logger.info("Push subscription %s is gone (HTTP %s): deleted", subscription.pk, status_code)
                    subscription.delete()  # its sends go with it
                    continue
                if _never_reached(error):
                    send.delete()  # the push service did not take it: the next try sends it
                else:
                    PushSend.objects.filter(pk=send.pk).update(status_code=status_code)
                answer = f"HTTP {status_code}" if status_code else type(error).__name__
                failures.append(f"subscription {subscription.pk}: {answer}")
                continue
            PushSend.objects.filter(pk=send.pk).update(status_code=status_code)
            PushSubscription.objects.filter(pk=subscription.pk).update(last_pushed_at=timezone.now())
    if failures:
        raise PushFailed(f"push of notification {notification.pk} failed for " + "; ".join(failures))
