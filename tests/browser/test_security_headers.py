"""The pages' Content-Security-Policy in a real browser: everything the shop and its admin do is allowed, an
injected script is not.

Chromium reports every refusal as a `securitypolicyviolation` event (recorded here from every page of the
context, through a binding the policy does not govern) and as a console error (which `open_session` fails
any test on). The injection test rewrites a real page's HTML on its way to the browser, keeping the server's
headers: what a stored cross-site-scripting flaw would deliver.
"""

import re

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from orders.models import Order, OrderStatus
from tests.browser.data import place
from tests.browser.pages import (
    admin_change_status,
    admin_change_url,
    customer_login,
    expect_live,
    fill_checkout_address,
    staff_login,
    wait_for_hello,
)
from tests.conftest import requires_postgres, requires_redis
from tests.factories import ProductFactory
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => window.reportViolation({
  directive: event.effectiveDirective, blocked: event.blockedURI, page: document.location.pathname,
}));
"""
# What an attacker's stored markup would try: an inline script and an inline event handler.
INJECTED = (
    "<script>window.injectedScriptRan = true;</script>"
    '<img id="injected" src="/static/favicon.svg" onload="window.injectedHandlerRan = true">'
)
# Chromium's console line for each refusal.
REFUSED_IN_CONSOLE = re.compile(r"inline (script|event handler) violates the following Content Security Policy")


def record_violations(context: BrowserContext) -> list[dict]:
    """Every policy violation any page of `context` reports from now on."""
    violations: list[dict] = []
    context.expose_binding("reportViolation", lambda source, violation: violations.append(violation))
    context.add_init_script(REPORT_VIOLATIONS)
    return violations


def policy_of(page: Page, path: str) -> dict[str, str]:
    """Open `path` in `page`; the directives of the Content-Security-Policy it was served with."""
    response = page.goto(path)
    assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
    header = response.headers.get("content-security-policy", "")
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.fixture
def order(customer):
    return place(customer=customer, status=OrderStatus.PAID)  # one unread notification


def test_every_customer_page_keeps_to_the_policy_and_the_live_client_connects(open_session, customer, order):
    product = ProductFactory(name="Kettle")
    session = open_session("customer")
    violations = record_violations(session.context)
    page = customer_login(session, customer)

    for path in ("/", f"/products/{product.slug}/", "/cart/", "/orders/", f"/orders/{order.number}/",
                 "/notifications/", "/accounts/password/"):  # fmt: skip
        assert policy_of(page, path) == POLICY, path
        expect_live(page)
    # The forms post (the CSRF token comes from the form, not the cookie): add to cart, check out, mark all read.
    page.goto(f"/products/{product.slug}/")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator(".badge").first).to_contain_text("1")
    page.goto("/checkout/")
    fill_checkout_address(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-status")).to_be_visible()
    expect_live(page)
    page.goto("/notifications/")
    expect_live(page)
    page.get_by_role("button", name="Mark all as read").click()  # over the socket
    expect(page.locator("#unread-badge")).to_have_text("0 unread")

    assert Order.objects.filter(customer=customer).count() == 2
    assert violations == []


def test_the_admin_change_list_and_change_form_keep_to_the_policy(open_session, staff, order):
    session = open_session("staff")
    violations = record_violations(session.context)
    page = staff_login(session, staff)

    for path in ("/admin/", "/admin/orders/order/", admin_change_url(order), "/admin/shop/product/add/"):
        tab = session.new_page()  # a tab each: wait_for_hello watches a tab's newest socket
        assert policy_of(tab, path) == POLICY, path
        wait_for_hello(session, tab)
    page.goto("/admin/orders/order/")
    page.locator(f'#result_list input.action-select[value="{order.pk}"]').check()  # the actions bar's script
    expect(page.locator(".action-counter")).to_contain_text("1 of")
    # The change form posts.
    admin_change_status(page, order, OrderStatus.PROCESSING, customer_message="Picked", internal_note="Bin 4")

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PROCESSING
    assert violations == []


def test_the_csrf_cookie_is_out_of_reach_of_scripts(open_session, customer):
    session = open_session("customer")
    page = customer_login(session, customer)
    csrf = next(cookie for cookie in session.context.cookies() if cookie["name"] == "csrftoken")
    assert csrf["httpOnly"]
    assert "csrftoken" not in page.evaluate("document.cookie")


def test_an_inline_script_injected_into_a_page_runs_without_the_policy_and_is_refused_with_it(open_session):
    """On the login page, where an injected script would read the password as it is typed."""
    session = open_session("visitor")
    violations = record_violations(session.context)
    page = session.new_page()
    strip_policy = True

    def inject(route: Route) -> None:
        # (A document Playwright fulfils has no network address of its own: Chromium would refuse its sockets
        # to loopback, so this is a page without the live client.)
        response = route.fetch()
        headers = {name: value for name, value in response.headers.items() if name != "content-length"}
        if strip_policy:
            del headers["content-security-policy"]
        route.fulfill(response=response, headers=headers, body=response.text().replace("</main>", INJECTED + "</main>"))

    page.route("**/accounts/login/", inject)

    # Reproduced: the same page without its policy runs what was injected.
    page.goto("/accounts/login/")
    expect(page.locator("#injected")).to_be_visible()
    assert page.evaluate("[window.injectedScriptRan, window.injectedHandlerRan]") == [True, True]
    assert violations == []

    # Refused: with the server's headers neither runs, and the browser says so.
    strip_policy = False
    page.goto("/accounts/login/")
    expect(page.locator("#injected")).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert page.evaluate("[window.injectedScriptRan, window.injectedHandlerRan]") == [None, None]
    assert sorted(violation["directive"] for violation in violations) == ["script-src-attr", "script-src-elem"]
    assert {violation["blocked"] for violation in violations} == {"inline"}
    console = session.watch(page).errors
    assert len([error for error in console if REFUSED_IN_CONSOLE.search(error)]) == 2
    console[:] = [error for error in console if not REFUSED_IN_CONSOLE.search(error)]  # expected, not a failure


def test_a_script_on_a_page_cannot_open_a_socket_to_another_origin(open_session, customer, stack):
    """connect-src 'self': what got into a page cannot hand the session's socket, or anything, to another host."""
    session = open_session("customer")
    violations = record_violations(session.context)
    page = customer_login(session, customer)
    page.goto("/orders/")
    expect_live(page)  # same origin: allowed
    foreign = stack.web.ws_url.replace("127.0.0.1", "localhost")  # the same server under another origin

    outcome = page.evaluate(
        """(url) => new Promise((resolve) => {
             try {
               const socket = new WebSocket(url);
               socket.onopen = () => resolve("open");
               socket.onerror = () => resolve("error");
             } catch (error) { resolve(error.name); }
           })""",
        foreign,
    )

    assert outcome == "error"  # never "open": Chromium refuses it before any connection
    assert [violation["directive"] for violation in violations] == ["connect-src"]
    assert violations[0]["blocked"].startswith("ws://localhost:")
    console = session.watch(page).errors
    refused = f"console: Connecting to '{foreign}' violates the following Content Security Policy directive"
    assert [error for error in console if error.startswith(refused)] == console[-1:]
    console.remove(console[-1])  # expected, not a failure
