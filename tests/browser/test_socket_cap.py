"""A tab whose socket made room for the user's newer ones (close 4409) pauses instead of fighting back."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from orders.models import OrderStatus
from tests.browser.data import place
from tests.browser.pages import customer_login, expect_live
from tests.conftest import requires_postgres, requires_redis
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

# Long enough for the page's backoff to have retried several times (0.5 s, then 1 s, then 2 s).
NO_RECONNECT_WINDOW_MS = 3_500

OPEN_MORE_SOCKETS = """(count) => new Promise((resolve) => {
    const url = new URL("/ws/notifications/", window.location.href);
    url.protocol = "ws:";
    let hellos = 0;
    window.moreSockets = Array.from({ length: count }, () => {
        const socket = new WebSocket(url.href);
        socket.addEventListener("message", () => { if (++hellos === count) resolve(); }, { once: true });
        socket.addEventListener("close", (event) => { socket.closeCode = event.code; });
        return socket;
    });
})"""


def test_a_tab_whose_socket_is_replaced_pauses_until_it_is_shown_again(open_session, customer):
    place(customer=customer, status=OrderStatus.PAID)
    session = open_session("customer")
    tab = customer_login(session, customer)
    tab.goto("/orders/")
    expect_live(tab)
    watch = session.watch(tab)
    live_socket = watch.websockets[-1]

    # The user opens as many sockets again as they may have (other tabs, or a script with their cookie).
    with live_socket.expect_event("close"):
        tab.evaluate(OPEN_MORE_SOCKETS, settings.NOTIFICATION_SOCKETS_PER_USER)

    expect(tab.locator("#live-indicator")).to_have_attribute("data-state", "paused")
    expect(tab.locator("#live-indicator")).to_have_text(re.compile("paused"))
    with pytest.raises(PlaywrightTimeoutError):
        tab.wait_for_event("websocket", timeout=NO_RECONNECT_WINDOW_MS)  # no retry: it would close another

    with tab.expect_event("websocket"):
        tab.evaluate('() => document.dispatchEvent(new Event("visibilitychange"))')  # the tab is shown again
    expect_live(tab)
    # Now the oldest of the others made room for it.
    tab.wait_for_function("() => window.moreSockets[0].closeCode === 4409")
