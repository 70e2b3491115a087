"""Login limits beside django-axes' lockout of one username from one address, and the password-reset emails' limits.

axes locks a (username, address) pair out after LOGIN_FAILURE_LIMIT failures. That alone let a guesser with many
addresses try one account without end, and one address try one password on every account (password spraying).
Two more bounds, over a moving window, count failed password checks:

- per username, from any address (LOGIN_USERNAME_FAILURE_LIMIT). Over it, nobody can log in as that username until
  the window has room again, the right password included. Anyone can therefore pause logins to an account, so the
  bound is set above what one address can reach before axes locks it (docs/reliability.md, attack 1); sessions
  already signed in are untouched; a successful login clears the count.
- per address, for any usernames (LOGIN_ADDRESS_FAILURE_LIMIT; an IPv6 address counts as its /64, which one host
  gets for free). Never cleared by a success: sign-up is open, so an attacker could clear it at will.

Both are checked by an authentication backend between axes' and Django's, before any password is checked, and
refused with axes' 429 page, worded for the limit that applies. The counts live in Redis when there is one, so
every process shares them; else in the process.
"""

import hashlib
import ipaddress
import logging
import math
import time
from functools import cache

import redis
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

USERNAME = "username"
ADDRESS = "address"
PAIR = "username-and-address"  # axes' own lockout


@cache
def _limiter() -> MovingWindowRateLimiter:
    if settings.LOGIN_LIMIT_STORAGE == "memory://":
        return MovingWindowRateLimiter(storage_from_string("memory://"))
    # Short timeouts: a Redis that does not answer must not hold a login.
    storage = storage_from_string(
        settings.LOGIN_LIMIT_STORAGE,
        key_prefix=settings.LOGIN_LIMIT_KEY_PREFIX,
        socket_connect_timeout=2,
        socket_timeout=2,
        **settings.LOGIN_LIMIT_STORAGE_OPTIONS,
    )
    return MovingWindowRateLimiter(storage)


@cache
def _limits() -> dict[str, RateLimitItem]:
    return {
        USERNAME: parse(settings.LOGIN_USERNAME_FAILURE_LIMIT),
        ADDRESS: parse(settings.LOGIN_ADDRESS_FAILURE_LIMIT),
    }


def _keys(*, username: str, address: str) -> dict[str, str]:
    # Hashed: a username is whatever the client typed; case folded so "Alice" and "alice" share one count.
    name = hashlib.sha256(username.casefold().encode()).hexdigest()
    try:
        parsed = ipaddress.ip_address(address)
        network = ipaddress.ip_network(f"{parsed}/64", strict=False) if parsed.version == 6 else parsed
    except ValueError:
        network = address
    return {USERNAME: name, ADDRESS: str(network)}


def login_limit_reached(*, username: str, address: str) -> str | None:
    """Which login limit (USERNAME or ADDRESS) refuses a login as `username` from `address` now; None if none."""
    keys = _keys(username=username, address=address)
    try:
        for kind, limit in _limits().items():
            if not _limiter().test(limit, kind, keys[kind]):
                return kind
    except redis.RedisError as error:
        # Fail open: axes' lockout (in PostgreSQL) still holds, and logins keep working while Redis is away.
        logger.warning("Login limits unavailable, only the per-address lockout applies: %s", error)
    return None


def login_failure_record(*, username: str, address: str) -> str | None:
    """Count a failed password check; the limit it reached (USERNAME or ADDRESS), if any."""
    keys = _keys(username=username, address=address)
    try:
        for kind, limit in _limits().items():
            _limiter().hit(limit, kind, keys[kind])
    except redis.RedisError as error:
        logger.warning("Login limits unavailable, failure not counted: %s", error)
        return None
    return login_limit_reached(username=username, address=address)


def login_success_record(*, username: str) -> None:
    """A successful login clears its username's count (never its address's)."""
    keys = _keys(username=username, address="")
    try:
        _limiter().clear(_limits()[USERNAME], USERNAME, keys[USERNAME])
    except redis.RedisError as error:
        logger.warning("Login limits unavailable, count not cleared: %s", error)


def password_reset_allowed(*, email: str, address: str) -> bool:
    """Count a password-reset email to `email` asked from `address`; False once either is over its limit.

    Counted whether or not an account has that email, so the limits tell nobody which addresses have one.
    """
    keys = _keys(username=email, address=address)  # the email hashed and case-folded as a username is
    limits_ = {"reset-email": (parse(settings.PASSWORD_RESET_EMAIL_LIMIT), keys[USERNAME]),
               "reset-address": (parse(settings.PASSWORD_RESET_ADDRESS_LIMIT), keys[ADDRESS])}  # fmt: skip
    try:
        return all([_limiter().hit(limit, kind, key) for kind, (limit, key) in limits_.items()])
    except redis.RedisError as error:
        logger.warning("Password-reset limits unavailable, the email goes out: %s", error)
        return True


def login_limits_reset() -> None:
    """Forget every count (tests)."""
    _limiter().storage.reset()


def login_limit_minutes_left(*, kind: str, username: str, address: str) -> int:
    """Whole minutes until `kind`'s window has room again for this login."""
    keys = _keys(username=username, address=address)
    try:
        stats = _limiter().get_window_stats(_limits()[kind], kind, keys[kind])
    except redis.RedisError:
        return math.ceil(_limits()[kind].get_expiry() / 60)
    return max(1, math.ceil((stats.reset_time - time.time()) / 60))


def _refuse(request: HttpRequest, kind: str) -> None:
    request.login_limit = kind
    # axes' middleware turns this flag into the lockout response (lockout_response below).
    request.axes_locked_out = True


class LoginLimitBackend:
    """Refuses a login over a login limit before its password is checked; authenticates nobody itself."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        """Raise PermissionDenied over a limit; else note that the password is about to be checked."""
        if request is None or username is None:
            return None
        kind = login_limit_reached(username=username, address=request.META.get("REMOTE_ADDR", ""))
        if kind is not None:
            _refuse(request, kind)
            raise PermissionDenied(f"login limit per {kind} reached")
        request.login_password_checked = True
        return None


@receiver(user_login_failed, dispatch_uid="accounts.login_limits.failed")
def count_login_failure(sender, credentials: dict, request=None, **kwargs):
    """Count a wrong password (not a refused attempt: no password was checked); refuse at the bound."""
    if request is None or not getattr(request, "login_password_checked", False):
        return
    kind = login_failure_record(username=credentials.get("username", ""), address=request.META.get("REMOTE_ADDR", ""))
    if kind is not None:
        _refuse(request, kind)


@receiver(user_logged_in, dispatch_uid="accounts.login_limits.logged_in")
def clear_username_count(sender, request, user, **kwargs):
    """The account's owner got in: earlier failures for its username no longer count."""
    login_success_record(username=user.get_username())


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """axes' 429 page (AXES_LOCKOUT_CALLABLE), saying which limit applies and for how long."""
    kind = getattr(request, "login_limit", PAIR)
    if kind == PAIR:
        minutes = math.ceil(get_cool_off(request).total_seconds() / 60)
    else:
        username = (credentials or {}).get("username") or request.POST.get("username", "")
        minutes = login_limit_minutes_left(kind=kind, username=username, address=request.META.get("REMOTE_ADDR", ""))
    return render(request, "accounts/locked_out.html", {"limit": kind, "minutes": minutes}, status=429)
