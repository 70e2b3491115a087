"""The account page: email and name, the address book (each customer's own only), links to the rest."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import CustomerAddress
from accounts.services import customer_address_create
from tests.factories import CHECKOUT_ADDRESS, UserFactory

pytestmark = pytest.mark.django_db

ACCOUNT = reverse("accounts:account")
HAMBURG = {**CHECKOUT_ADDRESS, "line1": "Elbchaussee 5", "postcode": "22763", "city": "Hamburg"}


def an_address(customer, **fields) -> CustomerAddress:
    return customer_address_create(customer=customer, address={**CHECKOUT_ADDRESS, **fields})


def test_the_account_page_needs_a_login(client):
    response = client.get(ACCOUNT)
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_the_header_links_the_account_page_for_signed_in_users_only(client, customer):
    assert f'href="{ACCOUNT}"' not in client.get(reverse("shop:home")).content.decode()
    client.force_login(customer)
    assert f'href="{ACCOUNT}"' in client.get(reverse("shop:home")).content.decode()
    assert f'href="{ACCOUNT}" aria-current="page"' in client.get(ACCOUNT).content.decode()


def test_the_account_page_links_password_change_and_notification_preferences(customer_client):
    html = customer_client.get(ACCOUNT).content.decode()
    assert f'href="{reverse("accounts:password_change")}"' in html
    assert f'href="{reverse("notifications:preferences")}"' in html


def test_the_account_page_changes_email_and_name(customer_client, customer):
    response = customer_client.post(ACCOUNT, {"email": "dana@new.example", "first_name": "Dana", "last_name": "W"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.email, customer.first_name, customer.last_name) == ("dana@new.example", "Dana", "W")


@pytest.mark.parametrize("email", ["TAKEN@example.com", "taken@example.com"])
def test_an_email_another_account_has_whatever_its_case_is_a_form_error(customer_client, customer, email):
    UserFactory(email="taken@example.com")
    before = customer.email

    response = customer_client.post(ACCOUNT, {"email": email, "first_name": "Dana", "last_name": ""})

    assert response.status_code == 400
    assert "An account with this email address already exists." in response.content.decode()
    customer.refresh_from_db()
    assert (customer.email, customer.first_name) == (before, customer.first_name)


def test_keeping_one_s_own_email_in_another_case_is_allowed(customer_client, customer):
    response = customer_client.post(ACCOUNT, {"email": customer.email.upper(), "first_name": "", "last_name": ""})
    assert response.status_code == 302


@pytest.mark.parametrize("email", ["", "not an email"])
def test_a_bad_email_is_a_form_error_and_writes_nothing(customer_client, customer, email):
    before = (customer.email, customer.first_name)
    response = customer_client.post(ACCOUNT, {"email": email, "first_name": "Changed", "last_name": ""})
    assert response.status_code == 400
    customer.refresh_from_db()
    assert (customer.email, customer.first_name) == before


def test_the_account_page_shows_only_my_addresses_as_text(customer_client, customer, other_customer):
    an_address(customer, full_name="<b>Dana</b>")
    an_address(other_customer, full_name="Someone Else")
    html = customer_client.get(ACCOUNT).content.decode()
    assert "&lt;b&gt;Dana&lt;/b&gt;" in html and "<b>Dana</b>" not in html
    assert "Someone Else" not in html


def test_adding_an_address_makes_the_first_one_the_default(customer_client, customer):
    assert customer_client.post(reverse("accounts:address_create"), CHECKOUT_ADDRESS).status_code == 302
    assert customer_client.post(reverse("accounts:address_create"), HAMBURG).status_code == 302
    entries = list(CustomerAddress.objects.filter(customer=customer))
    assert [(entry.city, entry.is_default) for entry in entries] == [("Berlin", True), ("Hamburg", False)]


@pytest.mark.parametrize(
    "fields", [{"city": ""}, {"country": "US"}, {"phone": "ring ring"}, {"postcode": "x" * 21}, {"full_name": ""}]
)
def test_a_bad_address_is_a_form_error_and_writes_nothing(customer_client, customer, fields):
    entry = an_address(customer)

    created = customer_client.post(reverse("accounts:address_create"), {**CHECKOUT_ADDRESS, **fields})
    edited = customer_client.post(reverse("accounts:address_edit", args=[entry.pk]), {**CHECKOUT_ADDRESS, **fields})

    assert created.status_code == edited.status_code == 400
    assert 'class="field field-invalid"' in created.content.decode()
    entry.refresh_from_db()
    assert CustomerAddress.objects.filter(customer=customer).count() == 1
    assert entry.as_fields() == CHECKOUT_ADDRESS


def test_editing_an_address_saves_it(customer_client, customer):
    entry = an_address(customer)
    response = customer_client.post(reverse("accounts:address_edit", args=[entry.pk]), HAMBURG)
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.as_fields() == HAMBURG
    assert customer_client.get(reverse("accounts:address_edit", args=[entry.pk])).status_code == 200


def test_make_default_moves_the_default_to_that_address(customer_client, customer):
    first, second = an_address(customer), an_address(customer, city="Hamburg")

    customer_client.post(reverse("accounts:address_make_default", args=[second.pk]))

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)


def test_deleting_the_default_makes_the_newest_remaining_one_the_default(customer_client, customer):
    default, older, newest = an_address(customer), an_address(customer, city="Köln"), an_address(customer, city="Bonn")

    customer_client.post(reverse("accounts:address_delete", args=[default.pk]))

    assert not CustomerAddress.objects.filter(pk=default.pk).exists()
    assert CustomerAddress.objects.get(customer=customer, is_default=True) == newest
    assert CustomerAddress.objects.filter(pk=older.pk).exists()


@pytest.mark.parametrize(
    ("view", "method"),
    [("address_edit", "get"), ("address_edit", "post"), ("address_delete", "post"), ("address_make_default", "post")],
)
def test_another_customer_s_address_is_a_404_and_stays_as_it_was(customer_client, other_customer, view, method):
    theirs = an_address(other_customer)

    response = getattr(customer_client, method)(reverse(f"accounts:{view}", args=[theirs.pk]), HAMBURG)

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.as_fields() == CHECKOUT_ADDRESS and theirs.is_default


@pytest.mark.parametrize("view", ["address_delete", "address_make_default"])
def test_changes_are_post_only(customer_client, customer, view):
    entry = an_address(customer)
    assert customer_client.get(reverse(f"accounts:{view}", args=[entry.pk])).status_code == 405
    assert CustomerAddress.objects.filter(pk=entry.pk).exists()


def test_the_account_forms_need_the_csrf_token(customer):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(customer)
    entry = an_address(customer)
    assert strict.post(ACCOUNT, {"email": "x@example.com"}).status_code == 403
    assert strict.post(reverse("accounts:address_create"), CHECKOUT_ADDRESS).status_code == 403
    assert strict.post(reverse("accounts:address_delete", args=[entry.pk])).status_code == 403
    assert CustomerAddress.objects.filter(customer=customer).count() == 1
