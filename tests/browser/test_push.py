"""Browser push in Chromium: the preferences page's switch, and the service worker showing what the shop pushed.

A web server of this module's own runs with VAPID keys (push is off in the shared stack). Chromium's real
`PushManager.subscribe()` cannot work here: headless Debian Chromium answers "AbortError: Registration failed -
permission denied" even with notifications granted, and it would need Google's push service, out of reach. So
the page subscribes through a stand-in PushManager (`FAKE_PUSH_MANAGER`) holding keys the test made; everything
else is real: the page's permission request and service worker registration, its CSRF-checked POST and DELETE,
the form, the shop's encrypted request (to a push service of the test's own, which decrypts it with those keys),
and the service worker's `push` handler, given that message by the DevTools protocol
(`ServiceWorker.deliverPushMessage`). A system notification cannot be captured headless: the screenshot draws
what `getNotifications()` returned.
"""

import html
import json
import re
import time
from dataclasses import dataclass

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, CDPSession, Page, expect

from notifications.kinds import Channel
from notifications.models import NotificationDelivery, PushSubscription
from notifications.preferences import offline_channels_chosen
from notifications.push import push_deliver
from notifications.vapid import vapid_keys_generate
from orders.models import OrderStatus
from tests.browser.conftest import EXPECT_TIMEOUT_MS, VIEWPORT
from tests.browser.data import place
from tests.browser.pages import BrowserSession, customer_login
from tests.conftest import requires_postgres
from tests.live.servers import in_own_thread, live_db, server_env, start_web_server
from tests.notifications.push_service import BrowserKeys

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

CONTACT = "mailto:ops@example.com"
PREFERENCES = "/notifications/preferences/"
NOTIFICATION_PICTURE = {"width": 620, "height": 230}

# Stands in for Chromium's PushManager (whose subscribe() needs Google's push service): a subscription with
# the endpoint and keys the test made, kept in sessionStorage across the page's reloads, and a record of what
# the page asked for.
FAKE_PUSH_MANAGER = """
(() => {
  if (typeof sessionStorage === "undefined") return;  // pages only
  const made = %s;
  const toBase64 = (key) => btoa(String.fromCharCode(...new Uint8Array(key)));
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
  const subscription = (key) => ({
    endpoint: made.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: key },
    toJSON: () => made,
    unsubscribe: async () => { sessionStorage.removeItem("fakePushKey"); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    const key = toBase64(options.applicationServerKey);
    sessionStorage.setItem("fakePushKey", key);
    window.subscribedWith = {
      userVisibleOnly: options.userVisibleOnly,
      applicationServerKey: key.replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, ""),
    };
    return subscription(fromBase64(key));
  };
  PushManager.prototype.getSubscription = async function () {
    const key = sessionStorage.getItem("fakePushKey");
    return key ? subscription(fromBase64(key)) : null;
  };
})();
"""

PUSH_RESEND_SECONDS = 3.0
SHOWN_NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return (await registration.getNotifications()).map((n) => ({
    title: n.title, body: n.body, icon: n.icon, tag: n.tag, data: n.data,
  }));
}"""


@pytest.fixture(scope="module")
def server_keys():
    return vapid_keys_generate()


@pytest.fixture(scope="module")
def push_server(django_db_setup, e2e_workdir, e2e_static_root, server_keys):
    """daphne in embedded mode with push on, accepting the test's push service on 127.0.0.1 as an endpoint."""
    env = server_env(
        REDIS_URL="",
        WEBPUSH_VAPID_PRIVATE_KEY=server_keys.private_key,
        WEBPUSH_VAPID_PUBLIC_KEY=server_keys.public_key,
        WEBPUSH_CONTACT=CONTACT,
        WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS="true",
    )
    server = start_web_server("daphne-push", env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def push_keys(settings, server_keys):
    """The test process pushes (push_deliver) with the server's keys, as its worker would."""
    settings.WEBPUSH_VAPID_PRIVATE_KEY = server_keys.private_key
    settings.WEBPUSH_VAPID_PUBLIC_KEY = server_keys.public_key
    settings.WEBPUSH_CONTACT = CONTACT
    return server_keys


@pytest.fixture
def browser_keys():
    return BrowserKeys.generate()


@pytest.fixture
def session(request, push_server, playwright_browser):
    """A browser context against the push server, failing the test on any page error, as `open_session` does."""
    context = playwright_browser.new_context(base_url=push_server.base_url, viewport=VIEWPORT, reduced_motion="reduce")
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    browser_session = BrowserSession("customer", context)
    failed_before = request.session.testsfailed
    yield browser_session
    errors = [error for page in browser_session.pages for error in browser_session.watch(page).errors]
    context.close()
    if errors and request.session.testsfailed == failed_before:
        pytest.fail("The pages logged errors:\n" + "\n".join(errors), pytrace=False)


def with_push(context: BrowserContext, origin: str, keys: BrowserKeys, endpoint: str) -> None:
    """Notifications allowed for the shop, and the stand-in PushManager holding `keys`."""
    context.grant_permissions(["notifications"], origin=origin)
    context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(keys.subscription_json(endpoint)))


def turn_on_button(page: Page):
    return page.get_by_role("button", name="Turn on browser notifications")


def turn_off_button(page: Page):
    return page.get_by_role("button", name="Turn off browser notifications")


def expect_push(page: Page, *, on: bool) -> None:
    """The switch shows this browser's state, with the one button that changes it."""
    expect(page.locator("#push-status")).to_have_text(
        f"Browser notifications are {'on' if on else 'off'} in this browser."
    )
    expect(turn_off_button(page) if on else turn_on_button(page)).to_be_visible()
    expect(turn_on_button(page) if on else turn_off_button(page)).to_be_hidden()


def turn_push_on(page: Page) -> None:
    turn_on_button(page).click()
    expect_push(page, on=True)


def push_box(page: Page, topic: str):
    return page.locator(f'tr[data-topic="{topic}"] input[data-channel="push"]')


def email_box(page: Page, topic: str):
    return page.locator(f'tr[data-topic="{topic}"] input[data-channel="email"]')


@dataclass
class ServiceWorker:
    """The page's service worker as DevTools knows it, to hand it push messages."""

    page: Page
    cdp: CDPSession
    origin: str
    registration_id: str

    def deliver_push(self, data: str) -> list[dict]:
        """Deliver `data` as its push service would; the notifications the worker then shows.

        Sent again every few seconds until one shows, as a push service retries: DevTools now and then drops a
        message sent while it is still starting the worker. A repeat shows the same notification, counted once.
        """
        deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
        while True:
            self.cdp.send("ServiceWorker.deliverPushMessage",
                          {"origin": self.origin, "registrationId": self.registration_id, "data": data})  # fmt: skip
            resend_at = time.monotonic() + PUSH_RESEND_SECONDS
            while time.monotonic() < resend_at:
                shown = self.page.evaluate(SHOWN_NOTIFICATIONS)
                if shown:
                    return [dict(entry) for entry in {json.dumps(n, sort_keys=True): n for n in shown}.values()]
                assert time.monotonic() < deadline, "the service worker showed no notification"
                self.page.wait_for_timeout(50)


def service_worker(page: Page, origin: str) -> ServiceWorker:
    """The service worker controlling `origin`/, once DevTools reports it activated."""
    cdp = page.context.new_cdp_session(page)
    registrations: dict[str, dict] = {}
    statuses: dict[str, str] = {}
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.update({r["registrationId"]: r for r in event["registrations"]}),
    )
    cdp.on("ServiceWorker.workerVersionUpdated",
           lambda event: statuses.update({v["registrationId"]: v["status"] for v in event["versions"]}))  # fmt: skip
    cdp.send("ServiceWorker.enable")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    while True:
        for registration_id, registration in registrations.items():
            if registration["scopeURL"] == f"{origin}/" and not registration["isDeleted"]:
                if statuses.get(registration_id) == "activated":
                    return ServiceWorker(page, cdp, origin, registration_id)
        assert time.monotonic() < deadline, f"no activated service worker for {origin}/: {registrations} {statuses}"
        page.wait_for_timeout(50)  # DevTools events reach Python only while a Playwright call runs


def draw_notification(page: Page, notification: dict, origin: str) -> None:
    """What a desktop would show for `notification`, drawn in a blank page (headless has no notification area)."""
    escape = html.escape
    page.set_content(f"""<!DOCTYPE html><html><head><style>
      body {{ margin: 0; height: 100vh; background: linear-gradient(135deg, #3b4a5a, #1d232a);
             font: 15px/1.4 system-ui, sans-serif; }}
      .notification {{ position: absolute; top: 24px; right: 24px; width: 380px; display: flex; gap: 12px;
             padding: 14px 16px; border-radius: 12px; background: #fafafa; box-shadow: 0 8px 24px rgba(0,0,0,.35); }}
      .notification img {{ width: 40px; height: 40px; flex: none; }}
      .title {{ font-weight: 700; margin: 0 0 2px; }} .body {{ margin: 0; white-space: pre-line; color: #333; }}
      .origin {{ margin: 6px 0 0; color: #777; font-size: 12px; }}
      .caption {{ position: absolute; bottom: 10px; left: 24px; right: 24px; color: #cfd6dd; font-size: 12px; }}
    </style></head><body>
      <div class="notification" role="alert"><img src="{escape(notification["icon"])}" alt="">
        <div><p class="title">{escape(notification["title"])}</p><p class="body">{escape(notification["body"])}</p>
        <p class="origin">{escape(origin)} · opens {escape(notification["data"]["url"])}</p></div></div>
      <p class="caption">Drawn from registration.getNotifications() after a push reached the shop's service
      worker in Chromium (a headless browser has no notification area to capture).</p>
    </body></html>""")
    page.locator(".notification img").evaluate("(img) => img.decode()")


def test_the_shops_push_reaches_the_service_worker_which_shows_it_and_keeps_the_order_page_to_open(
    session, push_server, push_service, push_keys, browser_keys, customer, screenshot
):
    origin = push_server.base_url
    with_push(session.context, origin, browser_keys, push_service.endpoint("chromium"))
    page = customer_login(session, customer)
    page.goto(PREFERENCES)
    turn_push_on(page)
    assert page.evaluate("window.subscribedWith") == {
        "userVisibleOnly": True,
        "applicationServerKey": push_keys.public_key,
    }
    assert PushSubscription.objects.get(user=customer).endpoint == push_service.endpoint("chromium")
    worker = service_worker(page, origin)

    order = place(customer=customer, status=OrderStatus.SHIPPED)
    shipped = customer.notifications.get(payload__order__status=OrderStatus.SHIPPED)
    delivery, _ = NotificationDelivery.objects.get_or_create(
        notification=shipped, channel=Channel.PUSH, defaults={"due_at": timezone.now()}
    )
    in_own_thread(push_deliver, delivery=delivery)
    (request,) = push_service.requests
    message = browser_keys.decrypt(request.body)  # what the browser's push service hands the worker
    shown = worker.deliver_push(json.dumps(message))

    assert shown == [
        {
            "title": f"Order {order.number} has shipped",
            "body": "It's on its way to you.",
            "icon": f"{origin}{message['icon']}",
            "tag": f"notification-{shipped.seq}",
            "data": {"url": f"{origin}{order.get_absolute_url()}"},
        }
    ]
    picture = session.new_page()
    picture.set_viewport_size(NOTIFICATION_PICTURE)
    draw_notification(picture, shown[0], origin)
    screenshot(picture, "push-notification")


@pytest.mark.parametrize(
    "data, title, body, url",
    [
        ('{"title": "T", "body": "B", "url": "https://evil.example/x"}', "T", "B", "/notifications/"),
        ('{"title": "T", "body": "B", "url": "//evil.example/x"}', "T", "B", "/notifications/"),
        ("not json", "Shop", "", "/notifications/"),
        (
            '{"title": "Order SO-1 has shipped", "body": "On its way.", "url": "/orders/1/",'
            ' "tracking": {"carrier": "DHL", "number": "JD01", "url": "https://www.dhl.com/"}}',
            "Order SO-1 has shipped",
            "On its way.\nDHL JD01",
            "/orders/1/",
        ),
    ],
    ids=["another site", "scheme-relative", "not json", "tracking"],
)
def test_the_service_worker_shows_any_push_and_keeps_only_this_sites_pages_to_open(
    session, push_server, browser_keys, customer, data, title, body, url
):
    origin = push_server.base_url
    with_push(session.context, origin, browser_keys, "https://push.example.com/send/chromium")
    page = customer_login(session, customer)
    page.goto(PREFERENCES)
    (shown,) = service_worker(page, origin).deliver_push(data)

    assert (shown["title"], shown["body"], shown["data"]["url"]) == (title, body, f"{origin}{url}")


def test_the_preferences_page_turns_browser_notifications_on_saves_the_choices_and_turns_them_off(
    session, push_server, push_keys, browser_keys, customer, screenshot
):
    with_push(session.context, push_server.base_url, browser_keys, "https://push.example.com/send/chromium")
    page = customer_login(session, customer)
    page.goto(PREFERENCES)
    expect_push(page, on=False)
    expect(push_box(page, "order.shipped")).to_be_disabled()
    expect(push_box(page, "order.shipped")).to_be_checked()  # the default, shown before it can be changed

    turn_push_on(page)
    expect(push_box(page, "order.shipped")).to_be_enabled()
    expect(page.locator("#push-column-note")).to_be_hidden()
    subscription = PushSubscription.objects.get(user=customer)
    assert (subscription.endpoint, subscription.p256dh, subscription.auth) == (
        "https://push.example.com/send/chromium", browser_keys.p256dh, browser_keys.auth
    )  # fmt: skip
    assert "Chrome" in subscription.user_agent

    push_box(page, "order.delivered").uncheck()
    email_box(page, "order.paid").check()
    push_box(page, "order.paid").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save preferences").click()
    expect(page.locator(".message-success")).to_contain_text("Your notification preferences are saved")
    chosen = offline_channels_chosen(user_id=customer.pk)
    assert chosen["order.delivered"] == {Channel.EMAIL}
    assert chosen["order.paid"] == {Channel.EMAIL, Channel.PUSH}
    assert chosen["order.shipped"] == {Channel.EMAIL, Channel.PUSH}
    expect_push(page, on=True)  # the same subscription, sent again on load
    expect(push_box(page, "order.paid")).to_be_checked()
    screenshot(page, "preferences")

    turn_off_button(page).click()
    expect_push(page, on=False)
    expect(push_box(page, "order.paid")).to_be_disabled()
    assert not PushSubscription.objects.filter(user=customer).exists()
    assert offline_channels_chosen(user_id=customer.pk)["order.paid"] == {Channel.EMAIL, Channel.PUSH}


def test_a_browser_that_refused_notifications_is_told_where_to_allow_them(session, push_server, customer):
    session.context.add_init_script("Object.defineProperty(Notification, 'permission', {get: () => 'denied'});")
    page = customer_login(session, customer)
    page.goto(PREFERENCES)

    expect(page.locator("#push-status")).to_have_text(
        "Notifications are blocked for this shop in your browser's settings."
    )
    expect(page.get_by_role("button", name=re.compile("Turn (on|off) browser notifications"))).to_have_count(0)


def test_the_service_worker_is_served_from_the_root_as_javascript_under_the_shops_policy(session, push_server):
    page = session.new_page()
    response = page.request.get("/sw.js")

    assert response.ok
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "notifications" not in response.headers.get("permissions-policy", "")
    assert 'addEventListener("push"' in response.text()
