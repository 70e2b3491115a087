"""A forgotten password: the same answer for any address, one email for an account, a link that works once."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RESET_LINK = re.compile(r"https?://[^\s\"]+/accounts/password/reset/[^/\s]+/[^/\s\"]+/")


def ask_for_reset(client, email: str, capture):
    with capture(execute=True):  # the email is queued after commit
        return client.post(reverse("accounts:password_reset"), {"email": email})


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def test_a_known_and_an_unknown_address_get_the_same_answer_and_only_the_known_one_an_email(client, capture):
    dana = UserFactory(email="dana@example.com")

    known = ask_for_reset(client, "dana@example.com", capture)
    unknown = ask_for_reset(client, "nobody@example.com", capture)

    assert (
        (known.status_code, known.url) == (unknown.status_code, unknown.url) == (302, "/accounts/password/reset/sent/")
    )
    assert [message.to for message in mail.outbox] == [[dana.email]]
    sent = client.get(known.url).content.decode()
    assert "If an account has that email address, a link to choose a new password is on its way." in sent


def test_the_address_is_matched_whatever_its_case(client, capture):
    dana = UserFactory(email="dana@example.com")
    ask_for_reset(client, "DANA@Example.COM", capture)
    assert [message.to for message in mail.outbox] == [[dana.email]]


def test_the_link_is_built_on_site_url_never_on_the_request_s_host(client, capture, settings):
    settings.SITE_URL = "https://shop.example"
    UserFactory(email="dana@example.com")
    with capture(execute=True):
        client.post(reverse("accounts:password_reset"), {"email": "dana@example.com"}, HTTP_HOST="localhost")
    (message,) = mail.outbox
    link = RESET_LINK.search(message.body).group(0)
    assert link.startswith("https://shop.example/accounts/password/reset/")
    assert link in message.alternatives[0][0]  # the HTML part carries the same link


def test_the_link_sets_a_new_password_once_and_signs_every_session_out(client, capture):
    dana = UserFactory(email="dana@example.com")
    dana.set_password("the-old-pass-phrase")
    dana.save()
    signed_in = Client()
    signed_in.force_login(dana)
    ask_for_reset(client, dana.email, capture)
    link = RESET_LINK.search(mail.outbox[0].body).group(0)

    form_page = client.get(link, follow=True)  # Django swaps the token out of the URL first (no Referer leak)
    assert "Choose a new password" in form_page.content.decode()
    new = {"new_password1": "a-brand-new-pass-phrase", "new_password2": "a-brand-new-pass-phrase"}
    done = client.post(form_page.redirect_chain[-1][0], new)

    assert done.status_code == 302 and done.url == reverse("accounts:password_reset_complete")
    dana.refresh_from_db()
    assert dana.check_password("a-brand-new-pass-phrase")
    assert signed_in.get(reverse("orders:list")).status_code == 302  # its session ended with the old password
    again = Client().get(link, follow=True)
    assert "This link no longer works" in again.content.decode()
    assert "new_password1" not in again.content.decode()


def test_an_inactive_account_gets_no_email(client, capture):
    UserFactory(email="gone@example.com", is_active=False)
    ask_for_reset(client, "gone@example.com", capture)
    assert mail.outbox == []


def test_an_invalid_address_is_a_form_error_and_sends_nothing(client, capture):
    response = ask_for_reset(client, "not an address", capture)
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert mail.outbox == []


def test_the_login_page_links_to_the_reset(client):
    assert reverse("accounts:password_reset") in client.get(reverse("accounts:login")).content.decode()


def test_one_address_gets_at_most_its_limit_of_emails_and_the_same_answer_beyond(client, capture, settings):
    settings.PASSWORD_RESET_EMAIL_LIMIT = "2/hour"
    dana = UserFactory(email="dana@example.com")

    answers = {ask_for_reset(client, dana.email, capture).url for _ in range(4)}

    assert answers == {"/accounts/password/reset/sent/"}
    assert [message.to for message in mail.outbox] == [[dana.email]] * 2


def test_one_client_address_asking_for_many_accounts_is_bounded_too(client, capture, settings):
    settings.PASSWORD_RESET_ADDRESS_LIMIT = "3/hour"
    users = [UserFactory(email=f"user{n}@example.com") for n in range(5)]

    for user in users:
        assert ask_for_reset(client, user.email, capture).url == "/accounts/password/reset/sent/"

    assert len(mail.outbox) == 3
