"""When a session ends, its sockets close with 4403, and only its own: logout, password change, deactivation.

Also the race of a logout (or a new password) with a handshake, held at each side's critical point in turn.
"""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.testing import WebsocketCommunicator
from django.contrib.auth.signals import user_logged_out
from django.test import Client

from notifications.consumers import NotificationConsumer
from orders.models import OrderStatus
from tests.factories import DEFAULT_PASSWORD, StaffFactory
from tests.live.servers import in_own_thread
from tests.notifications.test_consumer import closed_with, make_user, open_socket, place, socket, transition

pytestmark = [pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-brand-new-phrase"


async def logged_in(user) -> Client:
    """A browser with its own session of `user`."""
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client


async def socket_of(client: Client) -> WebsocketCommunicator:
    """A tab of that browser: a socket on its session, past its hello."""
    communicator = socket(client.cookies["sessionid"].value)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


async def next_frame_is_notification_of(communicator: WebsocketCommunicator, order) -> bool:
    frame = await communicator.receive_json_from(timeout=5)
    return (frame["type"], frame["order"]["id"]) == ("notification", order.pk)


async def change_password_in_the_shop(client: Client) -> None:
    response = await sync_to_async(client.post)(
        "/accounts/password/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.status_code


def held_handshake() -> tuple:
    """The socket application with each handshake held after it read the session, before it joins its groups.

    The auth middleware has read the session and the user when `connect` starts; `session_read` is set
    there, and the handshake goes on once `go_on` is.
    """
    session_read, go_on = asyncio.Event(), asyncio.Event()

    class HeldConsumer(NotificationConsumer):
        async def connect(self):
            session_read.set()
            await go_on.wait()
            await super().connect()

    return AuthMiddlewareStack(HeldConsumer.as_asgi()), session_read, go_on


def held_socket(application, session_key: str) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"cookie", f"sessionid={session_key}".encode())]
    return WebsocketCommunicator(application, "/ws/notifications/", headers=headers)


async def held_tab(browser: Client) -> tuple[WebsocketCommunicator, asyncio.Task, asyncio.Event]:
    """A tab of `browser` whose handshake has read the session and waits for `go_on` before joining its groups."""
    application, session_read, go_on = held_handshake()
    tab = held_socket(application, browser.cookies["sessionid"].value)
    connecting = asyncio.create_task(tab.connect())
    async with asyncio.timeout(5):
        await session_read.wait()
    return tab, connecting, go_on


# --- Logout ----------------------------------------------------------------------------------


async def test_logout_closes_every_socket_of_the_ended_session_with_4403():
    browser = await logged_in(await make_user())
    tabs = [await socket_of(browser), await socket_of(browser)]  # two tabs share one browser's session

    await sync_to_async(browser.post)("/accounts/logout/")

    assert [await closed_with(tab) for tab in tabs] == [4403, 4403]


async def test_logout_leaves_the_users_other_sessions_open_and_receiving():
    customer = await make_user()
    order = await place(customer=customer)
    leaving, other_device = await logged_in(customer), await logged_in(customer)
    leaving_tab, other_tab = await socket_of(leaving), await socket_of(other_device)

    await sync_to_async(leaving.post)("/accounts/logout/")

    assert await closed_with(leaving_tab) == 4403
    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert await next_frame_is_notification_of(other_tab, order)
    await other_tab.disconnect()


async def test_other_users_sockets_stay_open_when_someone_logs_out():
    leaving, staying = await make_user(), await make_user()
    client = await logged_in(leaving)
    staying_socket, _ = await open_socket(staying)
    await sync_to_async(client.post)("/accounts/logout/")
    await staying_socket.send_json_to({"type": "ping"})
    assert await staying_socket.receive_json_from() == {"type": "pong"}
    await staying_socket.disconnect()


async def test_a_handshake_that_read_the_session_before_a_logout_is_closed_with_4403_and_gets_nothing():
    # Given a handshake that has read the session and not yet joined the user's group
    customer = await make_user()
    order = await place(customer=customer)
    browser = await logged_in(customer)
    tab, connecting, go_on = await held_tab(browser)

    # When the session is logged out meanwhile (its close message passes the group before the socket joins)
    await sync_to_async(browser.post)("/accounts/logout/")
    go_on.set()

    # Then the socket is accepted only to be closed with 4403, and none of the user's frames reach it
    connected, _ = await connecting
    assert connected
    assert await closed_with(tab) == 4403
    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert await tab.receive_nothing(timeout=0.5)
    await tab.disconnect()


async def test_a_logout_announces_the_end_once_the_session_is_gone_so_a_handshake_in_between_is_closed():
    # Given a logout held after its user_logged_out receivers ran, before the session is deleted
    browser = await logged_in(await make_user())
    announced, may_delete = threading.Event(), threading.Event()

    def hold_before_the_delete(sender, **kwargs):
        announced.set()
        may_delete.wait(10)

    user_logged_out.connect(hold_before_the_delete, dispatch_uid="test.hold_before_the_delete")  # after ours
    try:
        logging_out = asyncio.create_task(asyncio.to_thread(in_own_thread, browser.post, "/accounts/logout/"))
        assert await asyncio.to_thread(announced.wait, 10)

        # When a handshake reads the session, joins and re-checks in that gap (the session is still there)
        tab = await socket_of(browser)
        may_delete.set()
        await logging_out
    finally:
        may_delete.set()
        user_logged_out.disconnect(dispatch_uid="test.hold_before_the_delete")

    # Then the end, announced after the delete, still reaches it
    assert await closed_with(tab) == 4403


# --- New password, deactivation --------------------------------------------------------------------


async def test_a_password_change_closes_the_sockets_of_the_users_other_sessions_with_4403():
    customer = await make_user()
    changing, other_device = await logged_in(customer), await logged_in(customer)
    await socket_of(changing)
    other_tab = await socket_of(other_device)

    await change_password_in_the_shop(changing)

    assert await closed_with(other_tab) == 4403


async def test_a_password_change_keeps_every_tab_of_the_session_that_made_it_open_and_receiving():
    customer = await make_user()
    order = await place(customer=customer)
    changing = await logged_in(customer)
    tabs = [await socket_of(changing), await socket_of(changing)]  # the changing tab and another of its browser

    await change_password_in_the_shop(changing)

    await transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert [await next_frame_is_notification_of(tab, order) for tab in tabs] == [True, True]
    for tab in tabs:
        await tab.disconnect()


async def test_a_logout_after_a_password_change_closes_the_tabs_that_connected_before_it():
    customer = await make_user()
    browser = await logged_in(customer)
    tab = await socket_of(browser)  # connected with the session's key before the change cycled it
    await change_password_in_the_shop(browser)

    response = await sync_to_async(browser.post)("/accounts/logout/")

    assert response.status_code == 302, response.status_code
    assert await closed_with(tab) == 4403


async def test_a_password_set_by_the_admin_closes_every_socket_of_that_user():
    customer = await make_user()
    tab = await socket_of(await logged_in(customer))
    admin = await logged_in(await sync_to_async(StaffFactory)())

    response = await sync_to_async(admin.post)(
        f"/admin/accounts/user/{customer.pk}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert response.status_code == 302, response.status_code
    assert await closed_with(tab) == 4403


async def test_a_password_set_outside_any_request_closes_every_socket_of_the_user():
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    def change_password():
        customer.set_password(NEW_PASSWORD)
        customer.save()

    await sync_to_async(change_password)()
    assert await closed_with(communicator) == 4403


async def test_a_handshake_that_read_the_session_before_a_password_change_is_closed_with_4403():
    customer = await make_user()
    browser = await logged_in(customer)
    tab, connecting, go_on = await held_tab(browser)

    def change_password():
        customer.set_password(NEW_PASSWORD)
        customer.save()

    await sync_to_async(change_password)()
    go_on.set()

    connected, _ = await connecting
    assert connected
    assert await closed_with(tab) == 4403
    await tab.disconnect()


async def test_deactivating_an_account_closes_its_sockets_with_4403():
    staff = await sync_to_async(StaffFactory)()
    communicator, _ = await open_socket(staff)

    def deactivate():
        staff.is_active = False
        staff.save()

    await sync_to_async(deactivate)()
    assert await closed_with(communicator) == 4403


async def test_saving_an_account_without_credential_changes_keeps_its_sockets():
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    def rename():
        customer.first_name = "Renamed"
        customer.save()

    await sync_to_async(rename)()
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()
