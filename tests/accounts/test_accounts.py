"""Sign up, log in, log out and change password."""

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse

pytestmark = pytest.mark.django_db

User = get_user_model()


def test_sign_up_creates_the_customer_and_signs_them_in(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "dana",
            "email": "dana@example.com",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 302
    dana = User.objects.get(username="dana")
    assert not dana.is_staff
    assert int(client.session["_auth_user_id"]) == dana.pk


def test_sign_up_refuses_a_taken_email(client, customer):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "copycat",
            "email": customer.email,
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not User.objects.filter(username="copycat").exists()


def test_sign_up_refuses_a_taken_email_in_another_case(client, customer):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "copycat",
            "email": customer.email.upper(),
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == ["An account with this email address already exists."]
    assert not User.objects.filter(username="copycat").exists()


def test_the_database_refuses_a_second_account_for_one_email_in_any_case(customer):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="copycat", email=customer.email.swapcase(), password="a-long-pass-phrase")
    assert User.objects.filter(email__iexact=customer.email).count() == 1


def test_sign_up_requires_an_email(client):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "noemail", "email": "", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert "email" in response.context["form"].errors


def test_log_in_and_log_out(client, customer, password):
    response = client.post(reverse("accounts:login"), {"username": customer.username, "password": password})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session

    client.post(reverse("accounts:logout"))
    assert "_auth_user_id" not in client.session


def test_wrong_password_does_not_log_in(client, customer):
    response = client.post(reverse("accounts:login"), {"username": customer.username, "password": "wrong"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_password_change_requires_login_and_keeps_the_session(client, customer, password):
    assert client.get(reverse("accounts:password_change")).status_code == 302
    client.force_login(customer)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": password, "new_password1": "another-long-phrase", "new_password2": "another-long-phrase"},
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.check_password("another-long-phrase")
    assert client.get(reverse("orders:list")).status_code == 200


@pytest.mark.parametrize(("next_url", "expected"), [("/orders/", "/orders/"), ("https://evil.example/", "/")])
def test_sign_up_redirects_only_within_the_site(client, next_url, expected):
    response = client.post(
        reverse("accounts:signup") + f"?next={next_url}",
        {
            "username": "erin",
            "email": "erin@example.com",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response["Location"] == expected


def guess(client, username, password, address="203.0.113.7", url="accounts:login"):
    return client.post(reverse(url), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_password_guessing_is_locked_out_at_the_fifth_failure(client, customer, password):
    for _ in range(4):
        assert guess(client, customer.username, "wrong").status_code == 200
    assert guess(client, customer.username, "wrong").status_code == 429

    locked = guess(client, customer.username, password)  # even the right password, now

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_username_and_address(client, customer, other_customer, password):
    for _ in range(5):
        guess(client, customer.username, "wrong")
    assert guess(client, customer.username, password, address="198.51.100.1").status_code == 302
    client.post(reverse("accounts:logout"))
    assert guess(client, other_customer.username, password).status_code == 302


def test_a_successful_login_resets_the_failure_count(client, customer, password):
    for _ in range(4):
        guess(client, customer.username, "wrong")
    assert guess(client, customer.username, password).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(4):
        guess(client, customer.username, "wrong")
    assert guess(client, customer.username, password).status_code == 302


def test_admin_login_is_locked_out_too(client, staff, password):
    for _ in range(5):
        guess(client, staff.username, "wrong", url="admin:login")
    assert guess(client, staff.username, password, url="admin:login").status_code == 429
