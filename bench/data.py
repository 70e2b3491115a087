"""Bench customers: users with real logged-in sessions and one order each, made in bulk.

The rows are what login and checkout would have written (a session signed with the
servers' SECRET_KEY, an order with its number), made with bulk inserts because
10,000 logins through the login view would take longer than the benchmark.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import get_random_string

from orders.models import Order, OrderStatus, format_order_number
from support.models import Conversation

USERNAME_PREFIX = "bench-"
BATCH = 2000


@dataclass(frozen=True)
class Customer:
    user_id: int
    session_key: str
    order_id: int
    staff = False  # a class attribute, not a field: what the load generators are told (bench/loadgen.py)


@dataclass(frozen=True)
class StaffMember:
    user_id: int
    session_key: str
    staff = True


def _users(count: int, *, run: str, is_staff: bool = False) -> list:
    User = get_user_model()
    password = make_password(None)  # unusable: bench users only ever use their session
    return [
        User(
            username=f"{USERNAME_PREFIX}{run}-{i}",
            email=f"{USERNAME_PREFIX}{run}-{i}@example.com",
            password=password,
            is_staff=is_staff,
        )
        for i in range(count)
    ]


def staff_create(count: int, *, run: str) -> list[StaffMember]:
    """`count` staff members named bench-<run>-staff-<i>, each logged in (the admin's users: they see every order)."""
    users = _users(count, run=f"{run}-staff", is_staff=True)
    with transaction.atomic():
        get_user_model().objects.bulk_create(users, batch_size=BATCH)
        sessions = [_session_for(user) for user in users]
        Session.objects.bulk_create(sessions, batch_size=BATCH)
    return [
        StaffMember(user_id=user.pk, session_key=session.session_key)
        for user, session in zip(users, sessions, strict=True)
    ]


def conversations_create(order_ids: list[int]) -> None:
    """An empty conversation on each order, as its first message would make it: the bench's are under way."""
    Conversation.objects.bulk_create([Conversation(order_id=order_id) for order_id in order_ids], batch_size=BATCH)


def customers_create(count: int, *, run: str) -> list[Customer]:
    """`count` customers named bench-<run>-<i>, each logged in and with one pending order."""
    User = get_user_model()
    users = _users(count, run=run)
    with transaction.atomic():
        User.objects.bulk_create(users, batch_size=BATCH)
        orders = Order.objects.bulk_create(
            [Order(customer=user, status=OrderStatus.PENDING_PAYMENT) for user in users], batch_size=BATCH
        )
        for order in orders:
            order.number = format_order_number(order.pk)
        Order.objects.bulk_update(orders, ["number"], batch_size=BATCH)
        sessions = [_session_for(user) for user in users]
        Session.objects.bulk_create(sessions, batch_size=BATCH)
    return [
        Customer(user_id=user.pk, session_key=session.session_key, order_id=order.pk)
        for user, session, order in zip(users, sessions, orders, strict=True)
    ]


def _session_for(user) -> Session:
    """The session row `login()` would store for `user`."""
    store = SessionStore()
    data = {
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    return Session(
        session_key=get_random_string(32, VALID_KEY_CHARS),  # as SessionStore makes them
        session_data=store.encode(data),
        expire_date=timezone.now() + timedelta(days=1),
    )


def orders_reset(order_ids: list[int]) -> None:
    """Put the bench orders back to pending payment between scenarios (bench bookkeeping, not a transition)."""
    status_overwrite_for_seeding(Order.objects.filter(pk__in=order_ids), status=OrderStatus.PENDING_PAYMENT)


def status_overwrite_for_seeding(orders: QuerySet, *, status: str) -> int:
    """Set these orders' status with no event and no notification: for the bench's generated data only.

    Bench scenarios walk the same orders along the lifecycle again and again; resetting them is bookkeeping of
    the benchmark, not a change any customer or staff member made, so it skips the orders' guarded update
    (orders/status_writes.py) by calling Django's own.
    """
    return QuerySet.update(orders, status=status)
