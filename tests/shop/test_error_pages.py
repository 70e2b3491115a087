"""The error pages a customer may meet: the shop's own, with DEBUG off as in production, never the error's detail."""

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.shop.error_urls")]

LEAKS = ("Traceback", "internal reason", "internal detail", "RuntimeError", "PermissionDenied", "DisallowedHost")


def assert_shop_page(response, status: int, heading: str) -> None:
    body = response.content.decode()
    assert response.status_code == status
    assert f"<h1>{heading}</h1>" in body
    assert 'class="brand"' in body and "Back to the catalog" in body
    assert [leak for leak in LEAKS if leak in body] == []


def test_an_unknown_page_is_the_shop_s_404(client):
    assert_shop_page(client.get("/no-such-page/"), 404, "We could not find that page")


def test_a_forbidden_page_is_the_shop_s_403_without_the_reason(client):
    assert_shop_page(client.get("/forbidden/"), 403, "You cannot see this page")


def test_a_bad_request_is_the_shop_s_400(client):
    assert_shop_page(client.get("/", HTTP_HOST="not-an-allowed-host.example"), 400,
                     "That request could not be understood")  # fmt: skip


def test_a_server_error_is_the_shop_s_500_rendered_without_the_request():
    client = Client(raise_request_exception=False)
    assert_shop_page(client.get("/broken/"), 500, "Something went wrong on our side")


def test_the_error_pages_keep_the_signed_in_header_except_the_500_which_reads_nothing(customer):
    client = Client(raise_request_exception=False)
    client.force_login(customer)
    assert "Log out" in client.get("/no-such-page/").content.decode()
    assert "Log out" not in client.get("/broken/").content.decode()
