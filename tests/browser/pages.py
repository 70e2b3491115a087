"""Driving the shop and its admin in a real browser, and watching what the pages do.

Every wait here is event-driven (Playwright's expect() and wait_for_* with a
timeout). Events reach Python only while a Playwright call runs, so checking what
was recorded and then waiting for the next event cannot miss one in between.
"""

import json
import re
import time
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Locator, Page, WebSocket, expect

from tests.factories import CHECKOUT_ADDRESS, DEFAULT_PASSWORD


@dataclass
class PageWatch:
    """What a tab did that a test may assert on: dialogs, uncaught errors, sockets and their frames."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    websockets: list[WebSocket] = field(default_factory=list)
    # (socket index, frame) for every JSON frame the server sent, in arrival order.
    frames: list[tuple[int, dict]] = field(default_factory=list)

    def notification_seqs(self) -> list[int]:
        return [frame["seq"] for _, frame in self.frames if frame.get("type") == "notification"]


@dataclass
class BrowserSession:
    """One user's browser context (its own cookies), and the tabs opened in it."""

    name: str
    context: BrowserContext
    watches: dict[Page, PageWatch] = field(default_factory=dict)

    def new_page(self) -> Page:
        page = self.context.new_page()
        watch = self.watches[page] = PageWatch()

        def on_dialog(dialog: Dialog) -> None:
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_websocket(socket: WebSocket) -> None:
            index = len(watch.websockets)
            watch.websockets.append(socket)
            socket.on("framereceived", lambda payload: _record_frame(watch, index, payload))

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
        page.on("console", lambda message: _record_console_error(watch, message))
        page.on("websocket", on_websocket)
        return page

    def watch(self, page: Page) -> PageWatch:
        return self.watches[page]

    @property
    def pages(self) -> list[Page]:
        return list(self.watches)


def _record_frame(watch: PageWatch, index: int, payload: str | bytes) -> None:
    try:
        watch.frames.append((index, json.loads(payload)))
    except ValueError:
        watch.frames.append((index, {"type": "<not json>", "raw": payload}))


def _record_console_error(watch: PageWatch, message: ConsoleMessage) -> None:
    # The servers run with DEBUG off: a missing asset or a script error shows up here.
    if message.type == "error":
        watch.errors.append(f"console: {message.text}")


def fill_checkout_address(page: Page, address: dict | None = None) -> None:
    """Fill checkout's name and shipping address the way a customer does (CHECKOUT_ADDRESS unless given)."""
    address = address or CHECKOUT_ADDRESS
    for name in ("full_name", "line1", "line2", "postcode", "city", "phone"):
        page.locator(f"#id_{name}").fill(address[name])
    page.locator("#id_country").select_option(address["country"])


# --- Logging in through the real login pages -------------------------------------------------


def customer_login(session: BrowserSession, user, password: str = DEFAULT_PASSWORD) -> Page:
    """A new tab of `session`, logged in as a customer through /accounts/login/."""
    page = session.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name=re.compile(r"^Log out"))).to_be_visible()
    return page


def staff_login(session: BrowserSession, user, password: str = DEFAULT_PASSWORD) -> Page:
    """A new tab of `session`, logged in to the admin through /admin/login/."""
    page = session.new_page()
    page.goto("/admin/login/")
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(password)
    with page.expect_navigation():
        page.locator('#login-form input[type="submit"]').click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    return page


# --- The live connection -------------------------------------------------------------------------


def expect_live(page: Page) -> None:
    """The shop page's socket is open (the server joined its groups before accepting it)."""
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")


def wait_for_hello(session: BrowserSession, page: Page) -> None:
    """The page's newest socket got its `hello`: it is subscribed (pages without an indicator, e.g. the admin)."""
    watch = session.watch(page)
    if not watch.websockets:
        page.wait_for_event("websocket")
    index = len(watch.websockets) - 1
    if not any(i == index and frame.get("type") == "hello" for i, frame in watch.frames):
        watch.websockets[index].wait_for_event("framereceived", predicate=lambda payload: '"type":"hello"' in payload)


def mark_page(page: Page) -> None:
    """A marker that survives DOM updates but not a reload or a navigation."""
    page.evaluate("window.__noReloadMarker = 1")


def expect_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReloadMarker") == 1, "the page was reloaded or navigated away"


# --- Shop pages ----------------------------------------------------------------------------------------


def toasts(page: Page) -> Locator:
    return page.locator("#toasts .toast")


def timeline_steps(page: Page) -> Locator:
    return page.locator("#order-timeline > li")


# --- The admin -------------------------------------------------------------------------------------------


def admin_change_url(order) -> str:
    return f"/admin/orders/order/{order.pk}/change/"


def admin_change_status(
    page: Page,
    order,
    status: str,
    *,
    customer_message: str = "",
    internal_note: str = "",
    carrier: str = "",
    tracking_number: str = "",
) -> float:
    """Open the order's change form in the admin, pick `status`, write the message, the note and tracking, save.

    Returns when Save was clicked (time.monotonic()), for tests that time what follows.
    """
    page.goto(admin_change_url(order))
    page.locator("#id_status").select_option(status)
    if carrier:
        page.locator("#id_carrier").select_option(carrier)
    if tracking_number:
        page.locator("#id_tracking_number").fill(tracking_number)
    if customer_message:
        page.locator("#id_customer_message").fill(customer_message)
    if internal_note:
        page.locator("#id_internal_note").fill(internal_note)
    with page.expect_navigation():
        clicked_at = time.monotonic()
        page.locator('input[name="_save"]').click()
    expect(page.locator("ul.messagelist li.success")).to_be_visible()
    return clicked_at


def admin_hide_nav_sidebar(page: Page) -> None:
    """Collapse the admin's app list («), as staff do on a narrow screen; the context remembers it."""
    page.locator("#toggle-nav-sidebar").click()
    expect(page.locator("#main")).not_to_have_class(re.compile(r"\bshifted\b"))


def admin_row(page: Page, order) -> Locator:
    """The change list row of `order`."""
    return page.locator("#result_list tbody tr").filter(has=page.locator(f'input.action-select[value="{order.pk}"]'))


# --- An order's support conversation (static/js/pages/order-chat.js), on the order page and in the admin --------


def wait_for_frame(session: BrowserSession, page: Page, frame_type: str) -> dict:
    """The first frame of `frame_type` the page's newest socket got (waiting for it if it has not come yet)."""
    watch = session.watch(page)
    if not watch.websockets:
        page.wait_for_event("websocket")
    index = len(watch.websockets) - 1

    def of_type(payload: str | bytes) -> bool:
        try:
            return json.loads(payload).get("type") == frame_type
        except (ValueError, AttributeError):
            return False

    if not any(i == index and frame.get("type") == frame_type for i, frame in watch.frames):
        watch.websockets[index].wait_for_event("framereceived", predicate=of_type)
    return next(frame for i, frame in watch.frames if i == index and frame.get("type") == frame_type)


def chat_messages(page: Page) -> Locator:
    """The conversation's messages as shown, in order (those still being sent last)."""
    return page.locator("#order-chat .chat-messages > li")


def chat_send(page: Page, text: str, *, internal: bool = False) -> None:
    """Write `text` in the composer and press Enter, as a user sends (a staff member may tick "Internal note")."""
    composer = page.locator("#chat-body")
    composer.fill(text)
    if internal:
        page.locator("#chat-internal").check()  # by id: the status form above has an "Internal note" field too
    composer.press("Enter")
