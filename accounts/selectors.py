"""Reads about accounts that are more than a filter."""

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db.models import QuerySet, Subquery
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import CustomerAddress, User
from shop.sessions import SessionStore


def session_authenticates(*, session_key: str, user_id: int) -> bool:
    """Whether the session still exists and still signs in this active user with the current password; one query."""
    session_data = (
        SessionStore.get_model_class()
        .objects.filter(session_key=session_key, expire_date__gt=timezone.now())
        .values("session_data")
    )
    user = (
        User.objects.filter(pk=user_id, is_active=True)
        .annotate(session_data=Subquery(session_data))
        .only("password")
        .first()
    )
    if user is None or user.session_data is None:
        return False  # logged out, expired, deactivated or deleted
    session = SessionStore().decode(user.session_data)
    # The check channels' get_user made at the handshake, against the password as it is now.
    return session.get(SESSION_KEY) == str(user_id) and constant_time_compare(
        session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    )


def email_taken(*, email: str, except_user_id: int | None = None) -> bool:
    """Whether another account has this email address, whatever its case (the rule of accounts_user_email_unique...)."""
    return User.objects.filter(email__iexact=email).exclude(pk=except_user_id).exists()


def customer_addresses(*, customer) -> QuerySet[CustomerAddress]:
    """The customer's address book, the default first; the only way views look addresses up."""
    return CustomerAddress.objects.filter(customer=customer)


def customer_address_of(*, customer, address_id: int) -> CustomerAddress:
    """One of the customer's own addresses; CustomerAddress.DoesNotExist for anyone else's."""
    return customer_addresses(customer=customer).get(pk=address_id)


def customer_default_address(*, customer) -> CustomerAddress | None:
    """The address that pre-fills checkout, if the customer has one."""
    return customer_addresses(customer=customer).filter(is_default=True).first()
