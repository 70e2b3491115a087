"""VAPID keys (notifications/vapid.py), `manage.py webpush_keys`, and the settings' check of the WEBPUSH_ trio."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import CommandError, call_command
from py_vapid import Vapid

from notifications.vapid import (
    b64url_decode,
    b64url_encode,
    p256_public_key_decode,
    vapid_keys_generate,
    vapid_public_key_of,
    vapid_settings_check,
)

ROOT = Path(__file__).resolve().parents[2]
CONTACT = "mailto:ops@example.com"


def test_a_generated_pair_is_a_raw_p256_key_and_its_uncompressed_point_both_in_unpadded_base64url():
    keys = vapid_keys_generate()

    assert len(b64url_decode(keys.private_key)) == 32 and "=" not in keys.private_key
    assert isinstance(p256_public_key_decode(keys.public_key).curve, ec.SECP256R1)
    assert vapid_public_key_of(keys.private_key) == keys.public_key
    assert vapid_keys_generate() != keys


def test_py_vapid_signs_with_the_generated_private_key_and_names_the_generated_public_key():
    keys = vapid_keys_generate()

    headers = Vapid.from_string(keys.private_key).sign({"sub": CONTACT, "aud": "https://push.example.com"})

    assert headers["Authorization"].endswith(f",k={keys.public_key}")


@pytest.mark.parametrize(
    "text", ["", "AQID", "AQIDBA", "AQIDBA==", "_-_-"], ids=["empty", "3 bytes", "4 bytes", "padded", "url-safe"]
)
def test_base64url_decodes_what_it_encodes(text):
    assert b64url_encode(b64url_decode(text)) == text.rstrip("=")


@pytest.mark.parametrize("text", ["AQ+D", "AQ/D", "A", "AQ ID", "AQID\n", "é", None], ids=repr)
def test_base64url_refuses_the_other_alphabet_bad_lengths_and_non_text(text):
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_a_point_that_is_not_on_the_curve_or_not_uncompressed_is_not_a_public_key():
    point = b64url_decode(vapid_keys_generate().public_key)
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    compressed = bytes([2 + point[-1] % 2]) + point[1:33]
    for raw in (off_curve, compressed, point[:64], b"\x04" + b"\x00" * 64):
        with pytest.raises(ValueError):
            p256_public_key_decode(b64url_encode(raw))


def test_no_webpush_settings_at_all_is_push_turned_off():
    vapid_settings_check(private_key="", public_key="", contact="")


@pytest.mark.parametrize("contact", [CONTACT, "https://shop.example.com", "mailto:ops@localhost"])
def test_a_pair_and_a_contact_push_services_accept_pass(contact):
    keys = vapid_keys_generate()
    vapid_settings_check(private_key=keys.private_key, public_key=keys.public_key, contact=contact)


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"contact": ""}, "missing: WEBPUSH_CONTACT"),
        ({"private_key": ""}, "missing: WEBPUSH_VAPID_PRIVATE_KEY"),
        ({"public_key": "", "contact": ""}, "missing: WEBPUSH_VAPID_PUBLIC_KEY, WEBPUSH_CONTACT"),
        ({"private_key": "not a key"}, "WEBPUSH_VAPID_PRIVATE_KEY is not base64url"),
        ({"private_key": b64url_encode(b"\x01" * 31)}, "WEBPUSH_VAPID_PRIVATE_KEY is not a raw P-256 private key"),
        ({"public_key": vapid_keys_generate().public_key}, "does not belong to WEBPUSH_VAPID_PRIVATE_KEY"),
        ({"contact": "ops@example.com"}, "WEBPUSH_CONTACT must be a mailto: address"),
        ({"contact": "http://shop.example.com"}, "WEBPUSH_CONTACT must be"),
        ({"contact": "https://shop.example.com/contact"}, "with no path"),
    ],
)
def test_a_configuration_push_could_not_work_with_is_refused_saying_what_to_fix(change, complaint):
    keys = vapid_keys_generate()
    given = {"private_key": keys.private_key, "public_key": keys.public_key, "contact": CONTACT, **change}

    with pytest.raises(ValueError, match=complaint):
        vapid_settings_check(**given)


def test_the_command_prints_the_three_environment_lines_of_a_working_pair():
    out = io.StringIO()
    call_command("webpush_keys", "--contact", CONTACT, stdout=out, stderr=io.StringIO())

    lines = dict(line.split("=", 1) for line in out.getvalue().splitlines())
    assert set(lines) == {"WEBPUSH_VAPID_PRIVATE_KEY", "WEBPUSH_VAPID_PUBLIC_KEY", "WEBPUSH_CONTACT"}
    assert lines["WEBPUSH_CONTACT"] == CONTACT
    vapid_settings_check(
        private_key=lines["WEBPUSH_VAPID_PRIVATE_KEY"],
        public_key=lines["WEBPUSH_VAPID_PUBLIC_KEY"],
        contact=lines["WEBPUSH_CONTACT"],
    )


def test_the_command_refuses_a_contact_push_services_would_refuse():
    with pytest.raises(CommandError, match="WEBPUSH_CONTACT must be"):
        call_command("webpush_keys", "--contact", "ops@example.com", stdout=io.StringIO())


def start_shop_settings(**webpush: str) -> subprocess.CompletedProcess:
    """Load shop.settings in a fresh process with these WEBPUSH_ variables (and none from this process)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEBPUSH_")}
    env.update(DJANGO_SETTINGS_MODULE="shop.settings", DEBUG="true", **webpush)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_shop_refuses_to_start_with_keys_that_are_not_a_pair():
    keys = vapid_keys_generate()
    result = start_shop_settings(
        WEBPUSH_VAPID_PRIVATE_KEY=keys.private_key,
        WEBPUSH_VAPID_PUBLIC_KEY=vapid_keys_generate().public_key,
        WEBPUSH_CONTACT=CONTACT,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured: WEBPUSH_VAPID_PUBLIC_KEY does not belong" in result.stderr


def test_the_shop_starts_with_a_pair_from_the_command():
    keys = vapid_keys_generate()
    result = start_shop_settings(
        WEBPUSH_VAPID_PRIVATE_KEY=keys.private_key, WEBPUSH_VAPID_PUBLIC_KEY=keys.public_key, WEBPUSH_CONTACT=CONTACT
    )

    assert result.returncode == 0, result.stderr
