"""Every line of a request names its id and user; the id comes back in X-Request-ID; no token is logged."""

import pytest

from shop.request_logs import request_id_from
from tests.log_capture import json_log_captured

pytestmark = pytest.mark.django_db


def test_every_line_of_a_request_carries_its_id_and_the_user_and_the_response_names_the_id(customer_client, customer):
    with json_log_captured() as log:
        response = customer_client.get("/orders/")
    lines = [line for line in log.lines() if line["logger"].startswith("django_structlog")]
    assert {line["event"] for line in lines} == {"request_started", "request_finished"}
    assert {(line["request_id"], line["user_id"]) for line in lines} == {(response["X-Request-ID"], customer.pk)}
    [finished] = log.events("request_finished")
    assert (finished["code"], finished["request"]) == (200, "GET /orders/")


def test_an_anonymous_request_is_logged_with_no_user(client):
    with json_log_captured() as log:
        client.get("/")
    [finished] = log.events("request_finished")
    assert finished["user_id"] is None and finished["ip"] == "127.0.0.1"


@pytest.mark.parametrize("given", ["7f3a9c0e-5a1b-4c2d-9e8f-0123456789ab", "nginx.0123abcd", "Root=1-5e1b:abc/2+x"])
def test_a_sane_x_request_id_from_the_client_or_a_proxy_is_kept(client, given):
    with json_log_captured() as log:
        response = client.get("/", headers={"X-Request-ID": given})
    assert response["X-Request-ID"] == given
    assert log.events("request_finished")[0]["request_id"] == given


@pytest.mark.parametrize("given", ["", "-starts-with-a-dash", "has space", "x" * 129, 'quote"', "ünïcode", "a\tb"])
def test_any_other_x_request_id_is_replaced_by_a_new_one(client, given):
    with json_log_captured() as log:
        response = client.get("/", headers={"X-Request-ID": given})
    assert response["X-Request-ID"] != given and len(response["X-Request-ID"]) == 32
    assert {line["request_id"] for line in log.events("request_finished")} == {response["X-Request-ID"]}


def test_two_requests_without_an_id_get_two():
    assert request_id_from(None) != request_id_from(None)


def test_a_query_string_and_a_token_in_the_url_are_not_logged(client):
    with json_log_captured() as log:
        client.get("/notifications/unsubscribe/secret-token-value/?email=someone@example.com")
    assert "secret-token-value" not in log.text() and "someone@example.com" not in log.text()
    assert log.events("request_finished")[0]["request"] == "GET /notifications/unsubscribe/<token>/"


def test_a_failing_login_logs_no_password_and_the_session_key_is_in_no_line(client, customer):
    wrong = "wrong-password-9c1e"
    with json_log_captured() as log:
        client.post("/accounts/login/", {"username": customer.username, "password": wrong})
        client.post("/accounts/login/", {"username": customer.username, "password": "shop-demo-pass"})
    session_key = client.cookies["sessionid"].value
    assert log.events("request_finished")[-1]["user_id"] == customer.pk
    for secret in (wrong, "shop-demo-pass", session_key):
        assert secret not in log.text()
