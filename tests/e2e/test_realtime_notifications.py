"""Real-time order notifications, end to end: a real daphne, a real Celery worker, real sockets.

A customer's browser holds a WebSocket; staff change orders through the admin over
HTTP, the worker changes them in tasks, and the notifications must arrive in seq
order, exactly once, on sockets that stay open for as long as the customer stays.
"""

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from websockets.exceptions import InvalidStatus

from celery_app import app as celery_app
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.conftest import requires_postgres, requires_redis
from tests.factories import place_order
from tests.live.clients import assert_no_frame, closing_code, receive_frame, receive_hello, receive_notification
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

CLOSE_UNAUTHENTICATED = 4401
CLOSE_SESSION_ENDED = 4403

transition = database_sync_to_async(order_transition)


@pytest.fixture
def order(customer):
    """A pending order of `customer`, committed (transaction=True) so the servers see it."""
    return place_order(customer=customer, status=OrderStatus.PENDING_PAYMENT)


def assert_notification(frame: dict, *, seq: int, order, status: str, previous: str) -> None:
    assert (frame["seq"], frame["order"]["id"], frame["order"]["number"]) == (seq, order.pk, order.number)
    assert (frame["order"]["status"], frame["order"]["previous_status"]) == (status, previous)


@requires_redis()
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task is meant to skip eager mode
async def test_customer_receives_admin_change_then_task_change_in_order(
    stack, open_browser, open_socket, customer, staff, order
):
    customer_browser = await (await open_browser(stack.web)).login(customer.username)
    socket = await open_socket(stack.web, customer_browser)
    hello = await receive_hello(socket)
    assert hello["user_id"] == customer.pk
    first = hello["last_seq"] + 1

    # Staff pays the order in the admin: the change and its publish happen in daphne.
    staff_browser = await (await open_browser(stack.web)).login(staff.username)
    await staff_browser.admin_change_status(order.pk, OrderStatus.PAID, internal_note="Paid by bank transfer")
    paid = await receive_notification(socket)
    assert_notification(paid, seq=first, order=order, status="paid", previous="pending_payment")

    # Then the warehouse task moves it on, in the real worker (send_task skips eager mode).
    celery_app.send_task("orders.tasks.advance_fulfilment", args=[order.pk, "paid"], queue=stack.queue)
    processing = await receive_notification(socket)
    assert_notification(processing, seq=first + 1, order=order, status="processing", previous="paid")
    assert processing["unread"] == paid["unread"] + 1


@requires_redis()
async def test_reconnect_with_after_replays_missed_changes_once(stack, open_browser, open_socket, customer, order):
    browser = await (await open_browser(stack.web)).login(customer.username)
    socket = await open_socket(stack.web, browser)
    last_seen = (await receive_hello(socket))["last_seq"]
    await socket.close()

    # Two changes while the customer is away.
    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    await transition(order_id=order.pk, to_status=OrderStatus.PROCESSING)

    socket = await open_socket(stack.web, browser, after=last_seen)
    hello = await receive_hello(socket)
    assert hello["last_seq"] == last_seen + 2
    paid, processing = await receive_notification(socket), await receive_notification(socket)
    assert_notification(paid, seq=last_seen + 1, order=order, status="paid", previous="pending_payment")
    assert_notification(processing, seq=last_seen + 2, order=order, status="processing", previous="paid")
    assert processing["seq"] == hello["last_seq"]
    await assert_no_frame(socket)  # replayed once: no live duplicate follows


@requires_redis()
async def test_idle_socket_on_redis_layer_stays_open_past_a_minute(stack, open_browser, open_socket, customer, order):
    browser = await (await open_browser(stack.web)).login(customer.username)
    socket = await open_socket(stack.web, browser)
    last_seq = (await receive_hello(socket))["last_seq"]
    log_start = stack.web.process.log_size()

    # The idle minute is the subject of this test, not a wait for something: with redis-py's
    # 5 s socket_timeout (redis-py 8's default), channels-redis' blocking receive on an idle
    # socket times out and daphne drops the connection within seconds (channels_redis#422).
    # Watching for 65 s, any frame or a close fails the test at once.
    await assert_no_frame(socket, within=65)

    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    paid = await receive_notification(socket)
    assert_notification(paid, seq=last_seq + 1, order=order, status="paid", previous="pending_payment")
    assert socket.close_code is None
    assert "Traceback" not in stack.web.process.log_text(since=log_start)


async def test_embedded_mode_delivers_admin_change_without_redis(
    embedded_server, open_browser, open_socket, customer, staff, order
):
    customer_browser = await (await open_browser(embedded_server)).login(customer.username)
    socket = await open_socket(embedded_server, customer_browser)
    first = (await receive_hello(socket))["last_seq"] + 1

    staff_browser = await (await open_browser(embedded_server)).login(staff.username)
    await staff_browser.admin_change_status(order.pk, OrderStatus.PAID)

    paid = await receive_notification(socket)
    assert_notification(paid, seq=first, order=order, status="paid", previous="pending_payment")


@requires_redis()
async def test_anonymous_socket_is_closed_with_4401(stack, open_socket):
    socket = await open_socket(stack.web)  # no session cookie
    assert await closing_code(socket) == CLOSE_UNAUTHENTICATED


@requires_redis()
async def test_foreign_origin_is_refused(stack, open_browser, open_socket, customer):
    browser = await (await open_browser(stack.web)).login(customer.username)
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(stack.web, browser, origin="http://evil.example")
    assert refused.value.response.status_code == 403


@requires_redis()
@pytest.mark.parametrize("page", ["another port", "https", "look-alike host"])
async def test_a_page_of_another_origin_on_the_same_host_is_refused(stack, open_browser, open_socket, customer, page):
    port = stack.web.port
    origin = {
        "another port": f"http://127.0.0.1:{port + 1}",
        "https": f"https://127.0.0.1:{port}",
        "look-alike host": f"http://127.0.0.1.evil.com:{port}",
    }[page]
    browser = await (await open_browser(stack.web)).login(customer.username)
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(stack.web, browser, origin=origin)
    assert refused.value.response.status_code == 403
    await receive_hello(await open_socket(stack.web, browser))  # the site's own page still gets in


@requires_redis()
async def test_logout_closes_that_sessions_sockets_with_4403_and_another_devices_keep_receiving(
    stack, open_browser, open_socket, customer, order
):
    leaving = await (await open_browser(stack.web)).login(customer.username)
    other_device = await (await open_browser(stack.web)).login(customer.username)
    assert leaving.session_id != other_device.session_id
    leaving_socket, other_socket = await open_socket(stack.web, leaving), await open_socket(stack.web, other_device)
    for socket in (leaving_socket, other_socket):
        await receive_hello(socket)

    await leaving.logout()

    assert await closing_code(leaving_socket) == CLOSE_SESSION_ENDED
    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert (await receive_notification(other_socket))["order"]["id"] == order.pk


@requires_redis()
async def test_server_side_closes_use_codes_daphne_can_send(stack, open_browser, open_socket, customer):
    # autobahn refuses 1009 or 1012 from an application (and would turn them into a crash and
    # a 1011): the consumer's own closes must arrive as sent, here the oversized message's 4009.
    browser = await (await open_browser(stack.web)).login(customer.username)
    socket = await open_socket(stack.web, browser)
    await receive_hello(socket)
    await socket.send('{"type": "ping", "padding": "' + "x" * settings.NOTIFICATION_SOCKET_MAX_MESSAGE_BYTES + '"}')
    error = await receive_frame(socket)
    assert (error["type"], error["code"]) == ("error", "too_large")
    assert await closing_code(socket) == 4009


@requires_redis()
async def test_unicode_digits_and_deep_nesting_get_error_frames_and_the_socket_stays_open(
    stack, open_browser, open_socket, customer
):
    # Both crashed the consumer before: daphne closed with 1011 and logged a traceback per attempt.
    browser = await (await open_browser(stack.web)).login(customer.username)
    log_start = stack.web.process.log_size()
    socket = await open_socket(stack.web, browser, after="%C2%B2")  # "²": a digit to str.isdigit(), not to int()
    await receive_hello(socket)
    assert (await receive_frame(socket))["code"] == "invalid_after"
    assert (await receive_frame(socket))["type"] == "reset"

    await socket.send("[" * 4096)  # within the 4 KiB cap; json.loads raises RecursionError on it

    error = await receive_frame(socket)
    assert (error["type"], error["code"]) == ("error", "invalid_json")
    await socket.send('{"type": "ping"}')
    assert await receive_frame(socket) == {"type": "pong"}
    assert socket.close_code is None
    assert "Traceback" not in stack.web.process.log_text(since=log_start)
