"""Forwarded headers against real processes: believed from the trusted nginx only (docs/reliability.md, attack 1).

One daphne with TRUSTED_PROXIES=127.0.0.1 and a real nginx in front of it (tests/live/nginx.py, the shipped
deploy/nginx.conf), reaching daphne from 127.0.0.1. Clients bind their own loopback source address: 127.0.0.5
and the like are "the internet", untrusted whether they talk to daphne directly or through nginx. The login
limits' counts are in Redis, under the test run's prefix, forgotten after each test.
"""

import re
import uuid

import httpx
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from limits import parse

from tests.conftest import requires_postgres, requires_redis
from tests.factories import DEFAULT_PASSWORD
from tests.live.clients import CSRF_INPUT, HTTP_TIMEOUT, Browser, receive_hello
from tests.live.nginx import start_nginx
from tests.live.servers import live_db, server_env, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # $request_id: 16 random bytes in hex
ATTACKER = "127.0.0.5"
CUSTOMER_ADDRESS = "127.0.0.6"
HSTS_SECONDS = "3600"


@pytest.fixture(scope="module")
def proxied_web(django_db_setup, e2e_workdir, e2e_static_root):
    """daphne trusting 127.0.0.1 (where nginx connects from), with HSTS sent on HTTPS requests only."""
    env = server_env(
        TRUSTED_PROXIES="127.0.0.1",
        SECURE_HSTS_SECONDS=HSTS_SECONDS,
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CELERY_QUEUE=f"proxied-{uuid.uuid4().hex[:8]}",  # nothing here queues a task; never the shared queue
    )
    server = start_web_server("daphne-trusting-nginx", env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def nginx(proxied_web, e2e_workdir):
    proxy = start_nginx([proxied_web], e2e_workdir)
    try:
        yield proxy
    finally:
        proxy.process.stop()


class LoginForm:
    """The login form, posted from one source address to one base URL, as often as a guesser likes."""

    def __init__(self, base_url: str, source: str, verify=True):
        transport = httpx.HTTPTransport(local_address=source, verify=verify)
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, transport=transport, timeout=HTTP_TIMEOUT)
        page = self.client.get("/accounts/login/")
        assert page.status_code == 200, page.status_code
        self.token = CSRF_INPUT.search(page.text).group(1)

    def post(self, username: str, password: str, headers: dict | None = None) -> httpx.Response:
        data = {"csrfmiddlewaretoken": self.token, "username": username, "password": password}
        headers = {"Referer": f"{self.base_url}/accounts/login/", **(headers or {})}
        return self.client.post("/accounts/login/", data=data, headers=headers)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def login_form():
    """`login_form(base_url, source)`: a LoginForm, closed after the test."""
    forms = []

    def open_(base_url: str, source: str, verify=True) -> LoginForm:
        forms.append(LoginForm(base_url, source, verify))
        return forms[-1]

    yield open_
    for form in forms:
        form.close()


def forged(n: int) -> str:
    return f"198.51.100.{n + 1}"


def lockout_addresses(customer) -> set[str]:
    return set(AccessAttempt.objects.filter(username=customer.username).values_list("ip_address", flat=True))


def test_forged_forwarded_for_from_an_untrusted_peer_does_not_escape_the_lockout(proxied_web, login_form, customer):
    """The probe's attack: 24 wrong passwords, each claiming another address, straight to daphne."""
    form = login_form(proxied_web.base_url, ATTACKER)

    statuses = [form.post(customer.username, "wrong", {"X-Forwarded-For": forged(n)}).status_code for n in range(24)]

    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429] * (25 - settings.AXES_FAILURE_LIMIT)
    refused = form.post(customer.username, DEFAULT_PASSWORD, {"X-Forwarded-For": forged(99)})
    assert refused.status_code == 429 and "sessionid" not in form.client.cookies
    assert lockout_addresses(customer) == {ATTACKER}


def test_forged_forwarded_proto_from_an_untrusted_peer_is_not_taken_for_https(proxied_web, login_form):
    form = login_form(proxied_web.base_url, ATTACKER)

    page = form.client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"})

    assert page.status_code == 200
    assert "strict-transport-security" not in page.headers  # Django sends HSTS on HTTPS requests only


def test_through_the_proxy_the_lockout_is_keyed_on_the_clients_real_address(nginx, login_form, customer):
    attacker = login_form(nginx.base_url, ATTACKER)

    # A forged leftmost X-Forwarded-For through nginx: nginx appends 127.0.0.5, and that is what counts.
    statuses = [attacker.post(customer.username, "wrong", {"X-Forwarded-For": forged(n)}).status_code for n in range(6)]

    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429] * (7 - settings.AXES_FAILURE_LIMIT)
    assert lockout_addresses(customer) == {ATTACKER}
    assert login_form(nginx.base_url, CUSTOMER_ADDRESS).post(customer.username, DEFAULT_PASSWORD).status_code == 302


def test_through_the_proxy_the_scheme_is_the_one_the_client_used(nginx, login_form):
    plain = login_form(nginx.base_url, ATTACKER)
    tls = login_form(nginx.tls_base_url, ATTACKER, verify=nginx.tls_context())

    forged_https = plain.client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    https = tls.client.get("/accounts/login/")

    assert "strict-transport-security" not in forged_https.headers  # nginx replaced the client's header with "http"
    assert https.headers["strict-transport-security"] == f"max-age={HSTS_SECONDS}"


def test_password_spraying_through_the_proxy_is_refused_at_the_address_bound(nginx, login_form, customer):
    bound = parse(settings.LOGIN_ADDRESS_FAILURE_LIMIT).amount
    sprayer = login_form(nginx.base_url, ATTACKER)

    statuses = [sprayer.post(f"sprayed-{n}", "Summer2026!").status_code for n in range(bound)]

    assert statuses == [200] * (bound - 1) + [429]
    assert sprayer.post(customer.username, DEFAULT_PASSWORD).status_code == 429
    assert login_form(nginx.base_url, CUSTOMER_ADDRESS).post(customer.username, DEFAULT_PASSWORD).status_code == 302


async def test_notification_sockets_pass_through_the_proxy(nginx, customer, open_socket):
    browser = Browser(nginx.base_url)
    try:
        await browser.login(customer.username)
        socket = await open_socket(nginx, browser)
        assert (await receive_hello(socket))["type"] == "hello"
    finally:
        await browser.aclose()


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (None, False),
        ("7f3a9c0e-5a1b-4c2d-9e8f-0123456789ab", True),  # another proxy's id, in front of this one
        ("Root=1-5e1b:abc/2+x", True),
        ("no spaces allowed", False),
        ("x" * 129, False),  # one character over the shop's bound
    ],
)
def test_through_the_proxy_a_request_has_one_id_in_the_response_nginx_s_log_and_the_shop_s(
    nginx, proxied_web, sent, kept
):
    """nginx keeps the X-Request-ID the shop would keep and replaces any other with its own, so the two agree."""
    headers = {"X-Request-ID": sent} if sent is not None else {}

    response = httpx.get(f"{nginx.base_url}/accounts/login/", headers=headers, timeout=HTTP_TIMEOUT)

    request_id = response.headers["X-Request-ID"]  # the shop's
    assert request_id == sent if kept else NGINX_REQUEST_ID.fullmatch(request_id), request_id
    logged = nginx.access_log_line(request_id)
    assert '"GET /accounts/login/ HTTP/1.1" 200 ' in logged and f" upstream=127.0.0.1:{proxied_web.port} " in logged
    # The console renderer quotes a value with punctuation in it.
    logged_by_shop = rf"request_finished.* request_id='?{re.escape(request_id)}'?(\s|$)"
    proxied_web.process.wait_for_log(logged_by_shop, deadline=10)


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/notifications/unsubscribe/SECRET-TOKEN-1/", "/notifications/unsubscribe/<token>/"),
        ("/accounts/password/reset/MQ/SECRET-TOKEN-2/", "/accounts/password/reset/MQ/<token>/"),
        ("/accounts/login/?next=/orders/&SECRET=3", "/accounts/login/"),
    ],
)
def test_nginx_logs_a_link_that_is_a_credential_without_its_secret_or_any_query_string(nginx, path, logged):
    response = httpx.get(f"{nginx.base_url}{path}", timeout=HTTP_TIMEOUT)

    line = nginx.access_log_line(response.headers["X-Request-ID"])
    assert f'"GET {logged} HTTP/1.1" {response.status_code} ' in line
    assert "SECRET" not in line
