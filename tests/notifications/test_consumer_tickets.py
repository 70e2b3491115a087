"""Connect tickets (notifications/tickets.py): the page's signed shortcut past the session lookup, never more.

A ticket opens a socket only beside the session cookie it was minted for, while that session still signs its user
in; a forged, expired, malformed or foreign ticket is ignored and the cookie alone decides, as before tickets.
"""

import re
import time

import pytest
from asgiref.sync import sync_to_async
from django.core import signing
from django.test import Client

from notifications.tickets import SALT, socket_ticket_sign
from orders.models import OrderStatus
from tests.factories import StaffFactory
from tests.log_capture import json_log_captured
from tests.notifications.test_consumer import closed_with, make_user, place, socket, transition
from tests.notifications.test_consumer_session_end import change_password_in_the_shop, next_frame_is_notification_of

pytestmark = [pytest.mark.django_db(transaction=True)]

_META_TICKET = re.compile(r'<meta name="live-ticket" content="([^"]*)">')


async def browser_of(user) -> Client:
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client


async def page_ticket(browser: Client) -> str:
    """The ticket a page renders for its live client, as the browser receives it."""
    response = await sync_to_async(browser.get)("/notifications/")
    assert response.status_code == 200
    match = _META_TICKET.search(response.content.decode())
    assert match and match[1], "the page renders no ticket"
    return match[1]


def cookie_of(browser: Client) -> str:
    return browser.cookies["sessionid"].value


def with_ticket(ticket: str) -> str:
    return f"?after=0&ticket={ticket}"


async def hello_of(communicator) -> dict:
    connected, _ = await communicator.connect()
    assert connected
    frame = await communicator.receive_json_from()
    assert frame["type"] == "hello", frame
    return frame


def stale(ticket_values: dict) -> str:
    """The ticket these values would have had, minted a second past its max age."""

    class SignedLongAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - 61)

    return SignedLongAgo(salt=SALT).sign_object(ticket_values)


# --- Opening by ticket -------------------------------------------------------------------------


async def test_the_pages_ticket_with_its_sessions_cookie_opens_the_users_socket():
    customer = await make_user()
    browser = await browser_of(customer)
    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(await page_ticket(browser))))
    assert hello["user_id"] == customer.pk


async def test_hello_and_a_pong_asked_for_one_bring_fresh_tickets_that_open_the_next_socket():
    customer = await make_user()
    browser = await browser_of(customer)
    first = socket(cookie_of(browser), query=with_ticket(await page_ticket(browser)))
    hello = await hello_of(first)
    await first.send_json_to({"type": "ping", "ticket": True})
    pong = await first.receive_json_from()
    await first.disconnect()

    for ticket in (hello["ticket"], pong["ticket"]):
        reconnected = await hello_of(socket(cookie_of(browser), query=with_ticket(ticket)))
        assert reconnected["user_id"] == customer.pk


async def test_a_socket_opened_by_ticket_is_delivered_to_and_closed_by_its_sessions_logout():
    customer = await make_user()
    order = await place(customer=customer)
    browser = await browser_of(customer)
    tab = socket(cookie_of(browser), query=with_ticket(await page_ticket(browser)))
    await hello_of(tab)

    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert await next_frame_is_notification_of(tab, order)
    await sync_to_async(browser.post)("/accounts/logout/")
    assert await closed_with(tab) == 4403


async def test_a_staff_members_socket_opened_by_ticket_hears_every_orders_change():
    staff = await sync_to_async(StaffFactory)()
    order = await place(customer=await make_user())
    browser = await browser_of(staff)
    tab = socket(cookie_of(browser), query=with_ticket(await page_ticket(browser)))
    await hello_of(tab)

    await transition(order_id=order.pk, to_status=OrderStatus.PAID)

    frame = await tab.receive_json_from(timeout=5)
    assert (frame["type"], frame["order"]["number"]) == ("order_changed", order.number)
    await tab.disconnect()


# --- Forged, expired, malformed: ignored, the cookie alone decides ---------------------------------------


async def test_a_forged_ticket_without_a_session_is_closed_with_4401():
    customer = await make_user()
    browser = await browser_of(customer)
    ticket = await page_ticket(browser)
    forged = ticket[:-1] + ("A" if ticket[-1] != "A" else "B")  # the signature no longer matches
    communicator = socket(None, query=with_ticket(forged))
    await communicator.connect()
    assert await closed_with(communicator) == 4401


async def test_a_ticket_signed_with_another_key_for_another_user_opens_only_the_cookies_user(settings):
    customer, victim = await make_user(), await make_user()
    browser = await browser_of(customer)
    shops_key, settings.SECRET_KEY = settings.SECRET_KEY, "an attacker's guess at the key " * 2
    forged = socket_ticket_sign(
        user_id=victim.pk, session_key=cookie_of(browser), socket_session="x" * 32, auth_digest="y" * 32
    )
    settings.SECRET_KEY = shops_key
    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(forged)))
    assert hello["user_id"] == customer.pk


async def test_an_expired_ticket_is_ignored_so_a_live_session_still_opens_and_none_is_refused():
    customer = await make_user()
    browser = await browser_of(customer)
    values = signing.TimestampSigner(salt=SALT).unsign_object(await page_ticket(browser))
    expired = stale(values)

    alone = socket(None, query=with_ticket(expired))
    await alone.connect()
    assert await closed_with(alone) == 4401
    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(expired)))
    assert hello["user_id"] == customer.pk


@pytest.mark.parametrize(
    "ticket",
    [
        "",
        "x",
        "a:b:c",
        "%00",
        "%FF%FE",
        "é" * 50,
        "A" * 5000,
        signing.dumps([1, 2], salt=SALT),  # signed without a timestamp
    ],
    ids=["empty", "one-char", "colons", "nul", "bad-utf8", "unicode", "huge", "no-timestamp"],
)
async def test_a_malformed_ticket_is_no_error_a_session_still_opens_and_none_is_4401(ticket):
    customer = await make_user()
    browser = await browser_of(customer)
    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(ticket)))
    assert hello["user_id"] == customer.pk
    alone = socket(None, query=with_ticket(ticket))
    await alone.connect()
    assert await closed_with(alone) == 4401


async def test_a_ticket_of_another_shape_signed_with_the_key_is_ignored():
    customer = await make_user()
    browser = await browser_of(customer)
    odd = signing.TimestampSigner(salt=SALT).sign_object({"user": customer.pk})
    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(odd)))
    assert hello["user_id"] == customer.pk
    alone = socket(None, query=with_ticket(odd))
    await alone.connect()
    assert await closed_with(alone) == 4401


# --- Cross-user and replay: bound to its session's cookie ---------------------------------------------


async def test_a_ticket_without_its_sessions_cookie_opens_nothing():
    browser = await browser_of(await make_user())
    communicator = socket(None, query=with_ticket(await page_ticket(browser)))
    await communicator.connect()
    assert await closed_with(communicator) == 4401


async def test_a_users_ticket_beside_another_users_cookie_opens_only_the_cookies_user_and_none_of_the_tickets():
    # Given alice's ticket replayed by bob, beside bob's own session cookie
    alice, bob = await make_user(), await make_user()
    alices_order = await place(customer=alice)
    alices_ticket = await page_ticket(await browser_of(alice))
    bobs_browser = await browser_of(bob)

    # When bob connects with it
    tab = socket(cookie_of(bobs_browser), query=with_ticket(alices_ticket))
    hello = await hello_of(tab)

    # Then it is bob's socket, and alice's notifications never reach it
    assert hello["user_id"] == bob.pk
    await transition(order_id=alices_order.pk, to_status=OrderStatus.PAID)
    assert await tab.receive_nothing(timeout=0.5)
    await tab.disconnect()


async def test_a_ticket_from_another_session_of_the_same_user_is_ignored():
    customer = await make_user()
    phone, laptop = await browser_of(customer), await browser_of(customer)
    phones_ticket = await page_ticket(phone)
    await sync_to_async(phone.post)("/accounts/logout/")  # the phone's session ends; the laptop's lives on

    hello = await hello_of(socket(cookie_of(laptop), query=with_ticket(phones_ticket)))
    assert hello["user_id"] == customer.pk  # by the laptop's own cookie: the phone's ticket opened nothing


# --- Revoked: logout, password change, deactivation -------------------------------------------------------


async def test_a_ticket_after_its_sessions_logout_is_closed_with_4403():
    browser = await browser_of(await make_user())
    ticket, cookie = await page_ticket(browser), cookie_of(browser)
    await sync_to_async(browser.post)("/accounts/logout/")

    communicator = socket(cookie, query=with_ticket(ticket))
    await communicator.connect()
    assert await closed_with(communicator) == 4403


async def test_a_ticket_after_the_password_was_set_elsewhere_is_closed_with_4403():
    customer = await make_user()
    browser = await browser_of(customer)
    ticket = await page_ticket(browser)
    customer.set_password("set-by-the-admin-or-a-reset")
    await sync_to_async(customer.save)()

    communicator = socket(cookie_of(browser), query=with_ticket(ticket))
    await communicator.connect()
    assert await closed_with(communicator) == 4403


async def test_a_ticket_from_before_the_sessions_own_password_change_falls_back_to_the_renewed_session():
    customer = await make_user()
    browser = await browser_of(customer)
    ticket = await page_ticket(browser)
    await change_password_in_the_shop(browser)  # Django keeps this session signed in, under a new key

    hello = await hello_of(socket(cookie_of(browser), query=with_ticket(ticket)))
    assert hello["user_id"] == customer.pk


async def test_a_ticket_after_deactivation_is_closed_with_4403():
    customer = await make_user()
    browser = await browser_of(customer)
    ticket = await page_ticket(browser)
    customer.is_active = False
    await sync_to_async(customer.save)()

    communicator = socket(cookie_of(browser), query=with_ticket(ticket))
    await communicator.connect()
    assert await closed_with(communicator) == 4403


# --- Logs ---------------------------------------------------------------------------------------------


async def test_a_socket_opened_by_ticket_logs_its_user_and_neither_the_ticket_nor_the_cookie():
    customer = await make_user()
    browser = await browser_of(customer)
    ticket = await page_ticket(browser)
    with json_log_captured() as log:
        await hello_of(socket(cookie_of(browser), query=with_ticket(ticket)))
    [connected] = log.events("socket_connected")
    assert connected["user_id"] == customer.pk
    assert ticket not in log.text() and cookie_of(browser) not in log.text()
