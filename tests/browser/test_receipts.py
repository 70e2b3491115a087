"""Delivery receipts in a real browser: a page that shows a notification acknowledges it, a hidden one waits.

The server's record of it (`Notification.delivered_at`) is read from the database, polled with a deadline.
"""

import json
import time

import pytest
from playwright.sync_api import Page, expect

from notifications.models import Notification
from orders.models import OrderStatus
from tests.browser.data import place, transition
from tests.browser.pages import customer_login, expect_live, toasts
from tests.conftest import requires_postgres, requires_redis
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

DEADLINE_S = 10.0
# Lets a test say whether the tab is looked at: Chromium in a test never hides a tab by itself.
VISIBILITY_SWITCH = """
window.__hidden = true;
Object.defineProperty(document, "visibilityState", {
  configurable: true, get: () => (window.__hidden ? "hidden" : "visible"),
});
"""


@pytest.fixture
def order(customer):
    return place(customer=customer, status=OrderStatus.PENDING_PAYMENT)


def delivered_at(customer, seq: int):
    return Notification.objects.get(recipient=customer, seq=seq).delivered_at


def wait_until(page: Page, predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S} s"
        page.wait_for_timeout(100)  # the browser runs, and its events reach this process, meanwhile


def wait_until_delivered(page: Page, customer, seq: int):
    wait_until(page, lambda: delivered_at(customer, seq) is not None, f"seq {seq} recorded as delivered")
    return delivered_at(customer, seq)


def acks_sent(page: Page) -> list[int]:
    """Record every ack the tab's sockets send from now on (the list fills as the page runs)."""
    sent: list[int] = []

    def on_frame(payload) -> None:
        message = json.loads(payload)
        if message.get("type") == "ack":
            sent.append(message["seq"])

    page.on("websocket", lambda socket: socket.on("framesent", on_frame))
    return sent


def test_an_open_order_page_acknowledges_a_live_notification_once(open_session, customer, order):
    tab = customer_login(open_session("customer"), customer)
    sent = acks_sent(tab)
    tab.goto(order.get_absolute_url())
    expect_live(tab)

    transition(order, OrderStatus.PAID)
    expect(toasts(tab)).to_have_count(1)
    first = wait_until_delivered(tab, customer, seq=1)
    wait_until(tab, lambda: sent == [1], "one ack, of seq 1")

    transition(order, OrderStatus.PROCESSING)
    expect(toasts(tab)).to_have_count(2)
    wait_until_delivered(tab, customer, seq=2)
    wait_until(tab, lambda: sent == [1, 2], "then one of seq 2")
    assert delivered_at(customer, seq=1) == first


def test_a_hidden_tab_acknowledges_only_once_it_is_shown(open_session, customer, order):
    session = open_session("customer")
    session.context.add_init_script(VISIBILITY_SWITCH)
    tab = customer_login(session, customer)
    sent = acks_sent(tab)
    tab.goto(order.get_absolute_url())
    expect_live(tab)

    transition(order, OrderStatus.PAID)
    # The page has handled the frame (its status changed in place); acking, had it done so, came in the same task.
    expect(tab.locator("#order-status")).to_have_text("Paid")
    expect(toasts(tab)).to_have_count(0)  # a hidden tab shows no toast
    assert sent == []
    assert delivered_at(customer, seq=1) is None

    tab.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    wait_until_delivered(tab, customer, seq=1)
    wait_until(tab, lambda: sent == [1], "one ack, of seq 1, once shown")
