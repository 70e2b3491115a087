"""An order's support conversation in a real browser: the customer on the order page, staff on its admin page.

Each in a browser context of their own against the real servers (tests.live.servers); static/js/chat.js and
static/js/pages/order-chat.js drive the page, over the socket protocol of docs/protocol.md ("Support conversations").
"""

import json
import re

import pytest
from playwright.sync_api import WebSocketRoute, expect

from orders.models import OrderStatus
from support.models import Message
from tests.browser.data import place
from tests.browser.pages import (
    admin_change_url,
    admin_hide_nav_sidebar,
    chat_messages,
    chat_send,
    customer_login,
    expect_live,
    expect_not_reloaded,
    mark_page,
    staff_login,
    wait_for_frame,
    wait_for_hello,
)
from tests.conftest import requires_postgres, requires_redis
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

QUESTION = "The parcel says delivered but it isn't here.\nCould you check?"
MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"
NOTE = "INTERNAL-9d2b: courier confirms a wrong address"
AFTER_NOTE = "We have asked the courier and will write again tomorrow."
SEEN = re.compile(r"^Seen$")


@pytest.fixture
def order(customer):
    return place(customer=customer, status=OrderStatus.DELIVERED)


def open_customer_chat(open_session, customer, order):
    session = open_session("customer")
    tab = customer_login(session, customer)
    tab.goto(order.get_absolute_url())
    expect_live(tab)
    wait_for_frame(session, tab, "chat.opened")
    return session, tab


def open_staff_chat(open_session, staff, order):
    session = open_session("staff")
    staff_login(session, staff)
    tab = session.new_page()  # a tab of its own: its first socket is the change page's
    tab.goto(admin_change_url(order))
    wait_for_hello(session, tab)
    wait_for_frame(session, tab, "chat.opened")  # it watches the conversation: live messages reach it
    return session, tab


def pending(page):
    return page.locator("#order-chat .chat-messages > li.pending")


def below_the_fold(page, locator) -> bool:
    return locator.evaluate("node => node.getBoundingClientRect().top > window.innerHeight")


def assert_shown_as_text(page, text: str) -> None:
    """`text` is a message's text, character for character, and none of its markup became an element."""
    body = chat_messages(page).locator(".chat-body").filter(has_text=text)
    expect(body).to_have_count(1)
    assert body.evaluate("node => node.textContent") == text
    assert page.locator("#order-chat img, #order-chat b, #order-chat script").count() == 0
    assert page.locator("img[src='x']").count() == 0


def test_customer_and_staff_hold_a_conversation_live_with_read_receipts_text_only_and_notes_for_staff_only(
    open_session, screenshot, customer, staff, order
):
    customer_session, customer_tab = open_customer_chat(open_session, customer, order)
    staff_session, staff_tab = open_staff_chat(open_session, staff, order)
    for tab in (customer_tab, staff_tab):
        mark_page(tab)
    staff_tab.evaluate("window.scrollTo(0, 0)")  # the conversation is below the status form, out of view

    # The customer asks: pending until the server stored it, then one message of theirs.
    chat_send(customer_tab, QUESTION)
    asked = chat_messages(customer_tab).filter(has_text="The parcel says delivered")
    expect(asked).to_have_class(re.compile(r"\bown\b"))
    expect(asked).not_to_have_class(re.compile(r"\bpending\b"))
    expect(asked.locator(".chat-body")).to_have_text(QUESTION)
    expect(customer_tab.locator("#chat-body")).to_have_value("")

    # Staff see it live, but have not looked at it yet: no receipt.
    question = chat_messages(staff_tab).filter(has_text="The parcel says delivered")
    expect(question).to_have_count(1)
    expect(question.locator(".chat-author")).to_have_text(customer.get_full_name())
    assert question.locator(".chat-body").evaluate("node => node.textContent") == QUESTION
    assert below_the_fold(staff_tab, question), "the admin's conversation should start out of view"
    expect(asked.locator(".chat-seen")).to_have_count(0)

    # Staff scroll to it: the customer's message says Seen.
    question.scroll_into_view_if_needed()
    expect(asked.locator(".chat-seen")).to_have_text(SEEN)

    # Staff reply with markup; both pages show it as text.
    chat_send(staff_tab, MARKUP)
    expect(chat_messages(customer_tab).filter(has_text=MARKUP)).to_have_count(1)
    reply = chat_messages(customer_tab).filter(has_text=MARKUP)
    expect(reply).to_have_class(re.compile(r"\bfrom-staff\b"))
    expect(reply.locator(".chat-author")).to_have_text(staff.first_name)
    for tab in (customer_tab, staff_tab):
        assert_shown_as_text(tab, MARKUP)

    # An internal note: the admin shows it as one; the customer never gets it, even after a later reply.
    chat_send(staff_tab, NOTE, internal=True)
    note = chat_messages(staff_tab).filter(has_text=NOTE)
    expect(note).to_have_class(re.compile(r"\binternal\b"))
    expect(note).not_to_have_class(re.compile(r"\bpending\b"))
    expect(note.locator(".chat-label")).to_have_text("Internal note")
    expect(staff_tab.locator("#chat-internal")).not_to_be_checked()
    chat_send(staff_tab, AFTER_NOTE)
    expect(chat_messages(customer_tab).filter(has_text=AFTER_NOTE)).to_have_count(1)
    expect(chat_messages(customer_tab)).to_have_count(3)
    expect(customer_tab.locator("#order-chat")).not_to_contain_text("INTERNAL-9d2b")
    expect(customer_tab.locator("#order-chat")).not_to_contain_text("Internal note")
    assert "INTERNAL-9d2b" not in json.dumps([frame for _, frame in customer_session.watch(customer_tab).frames])

    # The customer has the replies on screen: staff see Seen under their last public one, not under the note.
    chat_messages(customer_tab).last.scroll_into_view_if_needed()
    last_reply = chat_messages(staff_tab).filter(has_text=AFTER_NOTE)
    expect(last_reply.locator(".chat-seen")).to_have_text(SEEN)
    expect(staff_tab.locator("#order-chat .chat-seen")).to_have_count(1)
    expect(asked.locator(".chat-seen")).to_have_count(1)  # the customer's own receipt stays

    # Stored once each, in order, and the same after a reload (server-rendered, then live).
    stored = list(Message.objects.filter(conversation__order=order).order_by("seq").values_list("body", "internal"))
    assert stored == [(QUESTION, False), (MARKUP, False), (NOTE, True), (AFTER_NOTE, False)]
    for session, tab in ((customer_session, customer_tab), (staff_session, staff_tab)):
        expect_not_reloaded(tab)
        assert session.watch(tab).dialogs == []  # no alert(1) ran
    customer_tab.locator("#order-chat").scroll_into_view_if_needed()
    screenshot(customer_tab, "order-page-conversation")
    admin_hide_nav_sidebar(staff_tab)
    staff_tab.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # down to the "Internal note" box
    screenshot(staff_tab, "admin-conversation")

    customer_tab.reload()
    expect(chat_messages(customer_tab)).to_have_count(3)
    assert_shown_as_text(customer_tab, MARKUP)
    expect(customer_tab.locator("#order-chat")).not_to_contain_text("INTERNAL-9d2b")
    expect(customer_tab.locator("#order-chat .chat-seen")).to_have_count(1)


def test_a_send_whose_answer_was_lost_goes_again_on_the_next_socket_and_is_stored_and_shown_once(
    open_session, customer, staff, order
):
    session = open_session("customer")
    tab = customer_login(session, customer)
    sends: list[dict] = []
    dropped: list[dict] = []

    def lose_the_first_ack_and_the_socket(route: WebSocketRoute) -> None:
        server = route.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "chat.send":
                sends.append(frame)
            server.send(message)

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "chat.sent" and not dropped:
                dropped.append(frame)  # stored, but the page never hears so: its socket goes at that moment
                route.close(code=4000, reason="lost")
                return
            route.send(message)

        route.on_message(from_page)
        server.on_message(from_server)

    tab.route_web_socket(re.compile(r"/ws/notifications/"), lose_the_first_ack_and_the_socket)
    tab.goto(order.get_absolute_url())
    expect_live(tab)
    wait_for_frame(session, tab, "chat.opened")
    mark_page(tab)
    _, staff_tab = open_staff_chat(open_session, staff, order)

    chat_send(tab, "Is anyone there?")
    expect(chat_messages(tab).filter(has_text="Is anyone there?")).to_have_count(1)
    expect(pending(tab)).to_have_count(0)
    expect(chat_messages(tab)).to_have_count(1)
    expect(tab.locator("#live-indicator")).to_have_attribute("data-state", "live")

    assert len(dropped) == 1
    assert len(sends) == 2, sends
    assert sends[0]["client_id"] == sends[1]["client_id"] == dropped[0]["client_id"]
    assert Message.objects.filter(conversation__order=order).count() == 1
    expect(chat_messages(staff_tab).filter(has_text="Is anyone there?")).to_have_count(1)
    expect(chat_messages(staff_tab)).to_have_count(1)
    expect_not_reloaded(tab)


def test_a_refused_send_says_why_beside_the_composer_and_gives_the_text_back(open_session, customer, order):
    _, tab = open_customer_chat(open_session, customer, order)
    # CHAT_SEND_RATE_LIMIT allows a user five messages in five seconds.
    for number in range(1, 6):
        chat_send(tab, f"message {number}")
    expect(pending(tab)).to_have_count(0)
    chat_send(tab, "one too many")

    expect(tab.locator("#order-chat .chat-error")).to_have_text(
        "Too many messages at once: wait a moment and send it again."
    )
    expect(tab.locator("#chat-body")).to_have_value("one too many")
    expect(chat_messages(tab)).to_have_count(5)
    assert Message.objects.filter(conversation__order=order).count() == 5


def test_each_side_sees_the_other_typing_and_whether_the_other_is_there(open_session, customer, staff, order):
    _, customer_tab = open_customer_chat(open_session, customer, order)
    _, staff_tab = open_staff_chat(open_session, staff, order)

    expect(customer_tab.locator("#order-chat .chat-presence")).to_have_text(
        "A member of our team is viewing this conversation"
    )
    expect(staff_tab.locator("#order-chat .chat-presence")).to_have_text("Customer online")

    staff_tab.locator("#chat-body").press_sequentially("Let me check")
    typing = customer_tab.locator("#order-chat .chat-typing")
    expect(typing).to_have_text(f"{staff.first_name} is typing…")
    staff_tab.locator("#chat-body").press("Enter")
    expect(chat_messages(customer_tab).filter(has_text="Let me check")).to_have_count(1)
    expect(typing).to_be_hidden()

    customer_tab.locator("#chat-body").press_sequentially("Thank")
    expect(staff_tab.locator("#order-chat .chat-typing")).to_have_text(f"{customer.get_full_name()} is typing…")

    customer_tab.close()
    expect(staff_tab.locator("#order-chat .chat-presence")).to_have_text("Customer offline")
