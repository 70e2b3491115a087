"""Browsers' push subscriptions: what a page sends checked strictly, and one row per browser.

A page sends what `PushSubscription.toJSON()` gives (`{"endpoint", "keys": {"p256dh", "auth"}}`); anything
malformed is refused with a message saying which part, before anything is written.
"""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from notifications.models import PushSubscription
from notifications.vapid import b64url_decode, b64url_encode, p256_public_key_decode, p256_public_key_encode

ENDPOINT_MAX_LENGTH = PushSubscription._meta.get_field("endpoint").max_length
USER_AGENT_MAX_LENGTH = PushSubscription._meta.get_field("user_agent").max_length
AUTH_SECRET_BYTES = 16  # RFC 8291, 3.2
HTTPS_PORT = 443
_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Push services' URLs are plain ASCII; anything else (a space, a NUL, a lone surrogate) is refused, not stored.
_NOT_URL_TEXT = re.compile(r"[^\x21-\x7e]")


class PushSubscriptionInvalid(ValueError):
    """What a page sent is not a push subscription we can push to; the message says which part and why."""


@dataclass(frozen=True)
class PushSubscriptionInfo:
    endpoint: str
    p256dh: str  # base64url, unpadded
    auth: str


def _endpoint_check(endpoint: object) -> str:
    """The endpoint, if it is an https: URL of a push service (on a host name, port 443) of bounded length.

    No IP address, local name or other port: the shop POSTs to it, so it must not reach inside our network.
    A test's own push service on http://127.0.0.1 passes only with WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS.
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise PushSubscriptionInvalid("endpoint: missing (a push service's https: URL)")
    if len(endpoint) > ENDPOINT_MAX_LENGTH:
        raise PushSubscriptionInvalid(f"endpoint: longer than {ENDPOINT_MAX_LENGTH} characters")
    if _NOT_URL_TEXT.search(endpoint):
        raise PushSubscriptionInvalid("endpoint: must be printable ASCII, with no spaces")
    try:
        URLValidator(schemes=["https", "http"])(endpoint)
        parts = urlsplit(endpoint)
        port = parts.port
    except (ValidationError, ValueError):
        raise PushSubscriptionInvalid("endpoint: not a valid URL") from None
    host = parts.hostname or ""
    if settings.WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS and parts.scheme == "http" and host == "127.0.0.1":
        return endpoint
    if parts.scheme != "https":
        raise PushSubscriptionInvalid("endpoint: must be an https: URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise PushSubscriptionInvalid("endpoint: must not carry credentials or a fragment")
    if port not in (None, HTTPS_PORT):
        raise PushSubscriptionInvalid("endpoint: must use the https port")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise PushSubscriptionInvalid("endpoint: must name a push service's host, not an IP address")
    if not _HOST_NAME.fullmatch(host):
        raise PushSubscriptionInvalid("endpoint: must name a push service's public host")
    return endpoint


def push_subscription_parse(*, data: object) -> PushSubscriptionInfo:
    """Check what a page sent as its subscription; PushSubscriptionInvalid, saying what is wrong, if it is not one."""
    if not isinstance(data, dict):
        raise PushSubscriptionInvalid("the body must be a JSON object with endpoint and keys")
    endpoint = _endpoint_check(data.get("endpoint"))
    keys = data.get("keys")
    if not isinstance(keys, dict):
        raise PushSubscriptionInvalid("keys: missing (an object with p256dh and auth)")
    try:
        p256dh = p256_public_key_encode(p256_public_key_decode(keys.get("p256dh")))
    except ValueError:
        raise PushSubscriptionInvalid("keys.p256dh: must be an uncompressed P-256 public key in base64url") from None
    try:
        auth = b64url_decode(keys.get("auth"))
    except ValueError:
        auth = b""
    if len(auth) != AUTH_SECRET_BYTES:
        raise PushSubscriptionInvalid(f"keys.auth: must be {AUTH_SECRET_BYTES} bytes in base64url")
    return PushSubscriptionInfo(endpoint=endpoint, p256dh=p256dh, auth=b64url_encode(auth))


def push_subscription_save(*, user_id: int, subscription: PushSubscriptionInfo, user_agent: str = "") -> bool:
    """Keep a browser's subscription for this user: one row per endpoint, its keys updated on re-subscribing.

    An endpoint another user subscribed moves to this one (the browser is now theirs). True if the row is new.
    """
    user_agent = _CONTROL.sub("", user_agent)[:USER_AGENT_MAX_LENGTH]
    with transaction.atomic():
        _, created = PushSubscription.objects.update_or_create(
            endpoint=subscription.endpoint,
            defaults={"user_id": user_id, "p256dh": subscription.p256dh, "auth": subscription.auth,
                      "user_agent": user_agent},
        )  # fmt: skip
    return created


def push_subscription_delete(*, user_id: int, endpoint: str) -> bool:
    """Forget this user's subscription of one browser; True if there was one (another user's is left alone)."""
    deleted, _ = PushSubscription.objects.filter(user_id=user_id, endpoint=endpoint).delete()
    return bool(deleted)


def push_subscription_count(*, user_id: int) -> int:
    """How many browsers this user receives push notifications in."""
    return PushSubscription.objects.filter(user_id=user_id).count()
