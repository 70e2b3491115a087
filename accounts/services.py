"""What customers change about their own account: their name and email, and their address book."""

from collections.abc import Mapping

from django.db import transaction

from accounts.models import ADDRESS_FIELDS, CustomerAddress, User


def user_profile_update(*, user: User, email: str, first_name: str, last_name: str) -> User:
    """Change the customer's email and name (the form checked the email is nobody else's, whatever its case)."""
    user.email, user.first_name, user.last_name = email, first_name, last_name
    user.save(update_fields=["email", "first_name", "last_name"])
    return user


def _address_fields(address: Mapping[str, str]) -> dict[str, str]:
    return {field: address.get(field) or "" for field in ADDRESS_FIELDS}


def customer_address_create(*, customer: User, address: Mapping[str, str]) -> CustomerAddress:
    """Add an address to the customer's book; their first one becomes the default."""
    with transaction.atomic():
        User.objects.select_for_update().only("pk").get(pk=customer.pk)  # one default, even with two tabs
        is_default = not CustomerAddress.objects.filter(customer=customer).exists()
        return CustomerAddress.objects.create(customer=customer, is_default=is_default, **_address_fields(address))


def customer_address_update(*, entry: CustomerAddress, address: Mapping[str, str]) -> CustomerAddress:
    """Rewrite one entry of the book; orders placed with it keep their own copy."""
    for field, value in _address_fields(address).items():
        setattr(entry, field, value)
    entry.save(update_fields=list(ADDRESS_FIELDS))
    return entry


def customer_address_make_default(*, entry: CustomerAddress) -> CustomerAddress:
    """Make this entry the one that pre-fills checkout."""
    with transaction.atomic():
        User.objects.select_for_update().only("pk").get(pk=entry.customer_id)
        # Off first: the constraint allows one default per customer at any moment.
        CustomerAddress.objects.filter(customer_id=entry.customer_id, is_default=True).exclude(pk=entry.pk).update(
            is_default=False
        )
        entry.is_default = True
        entry.save(update_fields=["is_default"])
    return entry


def customer_address_delete(*, entry: CustomerAddress) -> None:
    """Remove an entry; if it was the default, the newest remaining one takes its place."""
    with transaction.atomic():
        User.objects.select_for_update().only("pk").get(pk=entry.customer_id)
        entry.delete()
        if entry.is_default and (newest := CustomerAddress.objects.filter(customer_id=entry.customer_id).first()):
            newest.is_default = True
            newest.save(update_fields=["is_default"])


def customer_address_remember(*, customer: User, address: Mapping[str, str]) -> CustomerAddress:
    """Checkout's "save this address": the same entry again if the book has it, else a new one; the default now."""
    fields = _address_fields(address)
    entry = CustomerAddress.objects.filter(customer=customer, **fields).first()
    if entry is None:
        entry = customer_address_create(customer=customer, address=fields)
    return entry if entry.is_default else customer_address_make_default(entry=entry)
