"""The staff inbox in a real browser: a customer's new message appears in the queue live, as text.

The customer writes over their own socket from their own browser context (through the real daphne); the staff
member's inbox (static/js/pages/support-inbox.js) hears `chat.inbox_changed` and rebuilds its rows from the JSON.
"""

import uuid

import pytest
from playwright.sync_api import Page, expect

from support.frames import author_name
from support.services import conversation_read, message_post
from tests.browser.data import place
from tests.browser.pages import admin_hide_nav_sidebar, customer_login, expect_not_reloaded, mark_page, staff_login
from tests.conftest import requires_postgres, requires_redis
from tests.live.servers import in_own_thread, live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

INBOX = "/admin/support/conversation/?show=all"

# The customer's send, over a socket of their page's own (the order page's widget is another module's).
CHAT_SEND = """async ([order, body, clientId]) => {
  const socket = new WebSocket(new URL("/ws/notifications/", location.href).href.replace(/^http/, "ws"));
  try {
    return await new Promise((resolve, reject) => {
      socket.onerror = () => reject(new Error("socket error"));
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        const send = { type: "chat.send", order, body, client_id: clientId };
        if (frame.type === "hello") socket.send(JSON.stringify(send));
        if (frame.type === "chat.sent") resolve(frame);
        if (frame.type === "error") reject(new Error(frame.code));
      };
    });
  } finally {
    socket.close();
  }
}"""


def say(author, order, body, *, internal=False):
    return in_own_thread(
        message_post, author=author, order_id=order.pk, body=body, client_id=uuid.uuid4(), internal=internal
    ).message


def inbox_row(page: Page, order):
    return page.locator(f'#support-inbox tbody tr[data-order-id="{order.pk}"]')


def test_a_customers_new_message_appears_in_the_inbox_live_awaiting_a_reply_with_the_unread_count_up(
    open_session, screenshot, customer, staff
):
    waiting = place()  # another customer's, waiting longer: it stays at the head of the queue
    say(waiting.customer, waiting, "My parcel is two weeks late")
    answered = place()
    say(answered.customer, answered, "Do you ship to Norway?")
    reply = say(staff, answered, "We do: 3 to 5 days")
    in_own_thread(conversation_read, reader=staff, order_id=answered.pk, seq=reply.seq)
    order = place(customer=customer)
    say(customer, order, "Can I change the delivery address?")
    say(staff, order, "Yes, done: it goes to your office")
    note = say(staff, order, "Changed in the carrier portal", internal=True)
    in_own_thread(conversation_read, reader=staff, order_id=order.pk, seq=note.seq)

    staff_session = open_session("staff")
    inbox = staff_login(staff_session, staff)
    inbox.goto(INBOX)
    admin_hide_nav_sidebar(inbox)  # room for every column at this window size
    # Subscribed (`chat.inbox_opened`): every change from now on reaches the page.
    expect(inbox.locator("#support-inbox")).to_have_attribute("data-live", "subscribed")
    mark_page(inbox)
    row = inbox_row(inbox, order)
    expect(row.locator(".inbox-status")).to_have_text("Answered")
    expect(row.locator(".inbox-unread")).to_have_text("0")
    expect(inbox.locator("#support-inbox tbody tr").first).to_have_attribute("data-order-id", str(waiting.pk))

    shop = customer_login(open_session("customer"), customer)
    body = "It went to the old one <b>again</b> & <script>alert(1)</script>"
    sent = shop.evaluate(CHAT_SEND, [order.pk, body, str(uuid.uuid4())])
    assert sent["message"]["seq"] == 4

    expect(row.locator(".inbox-status")).to_contain_text("Awaiting reply since")
    expect(row.locator(".inbox-unread")).to_have_text("1")
    expect(row.locator(".inbox-excerpt")).to_have_text(body)  # the markup as text, never as elements
    expect(row.locator(".inbox-author")).to_have_text(f"{author_name(customer, from_staff=False)} (customer)")
    expect(row.locator(".inbox-excerpt b, .inbox-excerpt script")).to_have_count(0)
    expect(row).to_have_class("inbox-awaiting live-changed")
    expect(row.locator(".inbox-order a")).to_have_attribute("href", f"/admin/orders/order/{order.pk}/change/")
    # Awaiting reply, but for less long than the other: second in the queue.
    rows = inbox.locator("#support-inbox tbody tr")
    expect(rows).to_have_count(3)
    for position, expected in enumerate((waiting, order, answered)):
        expect(rows.nth(position)).to_have_attribute("data-order-id", str(expected.pk))
    expect(inbox_row(inbox, answered).locator(".inbox-status")).to_have_text("Answered")
    expect(inbox.locator("#inbox-summary")).to_have_text("3 conversations")
    expect_not_reloaded(inbox)
    screenshot(inbox, "support-inbox")

    # A staff member reads it elsewhere: the count goes down again, live.
    in_own_thread(conversation_read, reader=staff, order_id=order.pk, seq=4)
    expect(row.locator(".inbox-unread")).to_have_text("0")
    expect(row.locator(".inbox-status")).to_contain_text("Awaiting reply since")
