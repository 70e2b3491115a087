"""VAPID keys (RFC 8292) for Web Push, and the base64url and P-256 checks a push subscription's keys need too.

The private key is the raw 32-byte scalar and the public key the uncompressed P-256 point, both base64url without
padding: what py_vapid reads and what a browser's `PushManager.subscribe({applicationServerKey})` takes.
Nothing here touches Django's models, so shop/settings.py can check its keys at start-up.
"""

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

P256_POINT_BYTES = 65  # 0x04, then x and y of 32 bytes each
P256_SCALAR_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# The JWT's `sub`, a way to reach whoever runs the shop: within what py_vapid accepts (an https: URL has no path).
_CONTACT = re.compile(r"mailto:[^@\s]+@(localhost|[\w%-]+(\.[\w%-]+)+)|https://(localhost|[\w-]+\.[\w.-]+)", re.I)


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (the URL-safe alphabet only, padding optional); ValueError for anything else."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    unpadded = text.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def p256_public_key_decode(text: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key an uncompressed point in base64url stands for; ValueError if it is not one."""
    raw = b64url_decode(text)
    if len(raw) != P256_POINT_BYTES or raw[0] != 0x04:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # refuses a point off the curve


def p256_public_key_encode(key: ec.EllipticCurvePublicKey) -> str:
    return b64url_encode(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


@dataclass(frozen=True)
class VapidKeys:
    private_key: str
    public_key: str


def vapid_keys_generate() -> VapidKeys:
    """A new key pair for the shop's push messages."""
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(P256_SCALAR_BYTES, "big")
    return VapidKeys(private_key=b64url_encode(scalar), public_key=p256_public_key_encode(key.public_key()))


def vapid_public_key_of(private_key: str) -> str:
    """The public key that goes with a private key; ValueError if it is not a P-256 private key."""
    raw = b64url_decode(private_key)
    if len(raw) != P256_SCALAR_BYTES:
        raise ValueError("not a raw P-256 private key of 32 bytes")
    return p256_public_key_encode(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()).public_key())


def vapid_settings_check(*, private_key: str, public_key: str, contact: str) -> None:
    """Refuse (ValueError, saying what to fix) a VAPID configuration push could not work with.

    None of the three set means push is off; otherwise all three are needed and the keys must be a pair.
    """
    if not (private_key or public_key or contact):
        return
    missing = [
        name
        for name, value in (
            ("WEBPUSH_VAPID_PRIVATE_KEY", private_key),
            ("WEBPUSH_VAPID_PUBLIC_KEY", public_key),
            ("WEBPUSH_CONTACT", contact),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"browser push needs all three WEBPUSH_ settings; missing: {', '.join(missing)}")
    try:
        derived = vapid_public_key_of(private_key)
    except ValueError as error:
        raise ValueError(f"WEBPUSH_VAPID_PRIVATE_KEY is {error} (make one with manage.py webpush_keys)") from None
    if derived != public_key.rstrip("="):
        raise ValueError("WEBPUSH_VAPID_PUBLIC_KEY does not belong to WEBPUSH_VAPID_PRIVATE_KEY")
    if not _CONTACT.fullmatch(contact):
        raise ValueError("WEBPUSH_CONTACT must be a mailto: address or an https: URL with no path")
