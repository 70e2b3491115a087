"""Beside axes' (username, address) lockout: bounds per username from any address, per address for any usernames."""

import pytest
from django.conf import settings
from django.urls import reverse
from limits import parse

from accounts.login_limits import _limiter
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PER_USERNAME = parse(settings.LOGIN_USERNAME_FAILURE_LIMIT).amount
PER_ADDRESS = parse(settings.LOGIN_ADDRESS_FAILURE_LIMIT).amount


def guess(client, username, password, address, url="accounts:login"):
    return client.post(reverse(url), {"username": username, "password": password}, REMOTE_ADDR=address)


def addresses(count, network="203.0.113"):
    """`count` distinct addresses, as a guesser with many machines has."""
    return [f"{network}.{n % 250 + 1}" if n < 250 else f"198.51.{n // 250}.{n % 250 + 1}" for n in range(count)]


def test_the_bounds_let_one_address_alone_never_pause_a_customers_logins():
    """axes locks a pair at 5 failures for 15 minutes: one address gets at most 20 an hour in."""
    assert settings.AXES_FAILURE_LIMIT * (60 // 15) < PER_USERNAME
    assert parse(settings.LOGIN_USERNAME_FAILURE_LIMIT).get_expiry() == 3600


def test_guessing_one_username_from_many_addresses_is_refused_at_its_bound(client, customer, password):
    *before, last = addresses(PER_USERNAME)
    for address in before:
        assert guess(client, customer.username, "wrong", address).status_code == 200

    refused = guess(client, customer.username, "wrong", last)

    assert refused.status_code == 429
    assert "logging in to it is paused for everyone" in refused.content.decode()
    assert guess(client, customer.username, password, "192.0.2.200").status_code == 429  # the right one, from anywhere
    assert "_auth_user_id" not in client.session


def test_a_paused_username_leaves_other_customers_alone(client, customer, other_customer, password):
    for address in addresses(PER_USERNAME):
        guess(client, customer.username, "wrong", address)
    assert guess(client, other_customer.username, password, "192.0.2.200").status_code == 302


def test_usernames_differing_only_in_case_share_one_count(client, customer, password):
    for n, address in enumerate(addresses(PER_USERNAME)):
        guess(client, customer.username.upper() if n % 2 else customer.username, "wrong", address)
    assert guess(client, customer.username, password, "192.0.2.200").status_code == 429


def test_password_spraying_from_one_address_is_refused_at_its_bound(client, customer, password):
    sprayed = [f"sprayed-{n}" for n in range(PER_ADDRESS - 1)]
    for username in sprayed:
        assert guess(client, username, "Summer2026!", "203.0.113.7").status_code == 200

    refused = guess(client, customer.username, "Summer2026!", "203.0.113.7")

    assert refused.status_code == 429
    assert "came from your network, for several accounts" in refused.content.decode()
    assert guess(client, customer.username, password, "203.0.113.7").status_code == 429  # nobody logs in from there
    assert guess(client, customer.username, password, "198.51.100.1").status_code == 302  # from elsewhere, as ever


def test_an_ipv6_address_counts_as_its_64(client, customer, password):
    for n in range(PER_ADDRESS):
        guess(client, f"sprayed-{n}", "wrong", f"2001:db8:1:2::{n + 1:x}")
    assert guess(client, customer.username, password, "2001:db8:1:2:ffff::1").status_code == 429
    assert guess(client, customer.username, password, "2001:db8:1:3::1").status_code == 302


def test_the_admin_login_is_bounded_too(client, staff, password):
    for address in addresses(PER_USERNAME):
        guess(client, staff.username, "wrong", address, url="admin:login")
    assert guess(client, staff.username, password, "192.0.2.200", url="admin:login").status_code == 429


def test_a_success_clears_its_usernames_count(client, customer, password):
    for address in addresses(PER_USERNAME - 1):
        guess(client, customer.username, "wrong", address)
    assert guess(client, customer.username, password, "192.0.2.200").status_code == 302
    client.post(reverse("accounts:logout"))

    for address in addresses(PER_USERNAME - 1, network="192.0.2"):
        assert guess(client, customer.username, "wrong", address).status_code == 200


def test_logging_in_to_ones_own_account_never_clears_an_address_count(client, password):
    """Sign-up is open: an attacker's own account must not reset the spraying bound."""
    attacker = UserFactory()
    for n in range(PER_ADDRESS - 1):
        guess(client, f"sprayed-{n}", "wrong", "203.0.113.7")
    assert guess(client, attacker.username, password, "203.0.113.7").status_code == 302
    client.post(reverse("accounts:logout"))

    assert guess(client, "sprayed-last", "wrong", "203.0.113.7").status_code == 429


def test_refused_attempts_are_not_counted(client, customer, other_customer, password):
    """Past axes' lockout of a pair no password is checked, so one address cannot push a username to its bound."""
    for _ in range(PER_USERNAME + 5):
        guess(client, customer.username, "wrong", "203.0.113.7")  # locked by axes after the fifth
    assert guess(client, customer.username, password, "198.51.100.1").status_code == 302


def test_the_lockout_page_says_how_long_it_lasts(client, customer):
    for address in addresses(PER_USERNAME):
        guess(client, customer.username, "wrong", address)
    page = guess(client, customer.username, "wrong", "192.0.2.200").content.decode()
    assert "Try again in 60 minutes." in page


@pytest.fixture
def login_limits_without_redis(settings):
    """The login limits pointed at a Redis that refuses connections (nothing listens on port 9)."""
    settings.LOGIN_LIMIT_STORAGE = "redis://127.0.0.1:9/0"
    _limiter.cache_clear()
    yield
    _limiter.cache_clear()


def test_with_redis_away_logins_still_work_and_axes_still_locks(client, customer, password, login_limits_without_redis,
                                                                caplog):  # fmt: skip
    """Fail open, with a warning and no traceback: axes' lockout lives in PostgreSQL and still holds."""
    assert guess(client, customer.username, password, "203.0.113.7").status_code == 302
    client.post(reverse("accounts:logout"))

    statuses = [guess(client, customer.username, "wrong", "203.0.113.7").status_code for _ in range(5)]

    assert statuses == [200] * 4 + [429]
    warnings = [record for record in caplog.records if record.name == "accounts.login_limits"]
    assert warnings and all(record.levelname == "WARNING" and not record.exc_info for record in warnings)
