"""Embedded mode has no beat: its web process runs the periodic tasks, and what they change reaches the pages live."""

import asyncio
from datetime import timedelta

import pytest
from celery.utils.imports import symbol_by_name
from django.conf import settings
from django.utils import timezone

from orders.models import Order, OrderStatus
from shop.embedded_schedule import RUN_ELSEWHERE, embedded_schedule
from tests.conftest import requires_postgres
from tests.factories import place_order
from tests.live.clients import receive_hello, receive_notification
from tests.live.servers import in_own_thread, live_db, server_env, start_web_server

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]


def test_the_embedded_schedule_is_beat_s_but_for_the_offline_fallback_which_has_its_own_loop():
    assert set(embedded_schedule()) == set(settings.CELERY_BEAT_SCHEDULE) - RUN_ELSEWHERE
    assert RUN_ELSEWHERE == {"deliver-notifications"}  # Procfile.embedded's `deliver` line (tests/deploy)
    for task_name, _ in embedded_schedule().values():
        assert symbol_by_name(task_name).name == task_name  # what the web process will run
    assert embedded_schedule()["cancel-unpaid-orders"] == (
        "orders.tasks.cancel_unpaid_orders",
        settings.UNPAID_ORDER_CHECK_SECONDS,
    )


@pytest.fixture(scope="module")
def embedded_with_quick_checks(django_db_setup, e2e_workdir, e2e_static_root):
    env = server_env(REDIS_URL="", UNPAID_ORDER_CHECK_SECONDS="0.5", UNPAID_ORDER_TIMEOUT_MINUTES="1")
    server = start_web_server("daphne-embedded-schedule", env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


async def test_an_order_left_unpaid_is_cancelled_by_the_web_process_and_its_page_hears_of_it_live(
    embedded_with_quick_checks, open_browser, open_socket, customer
):
    order = await place(customer)
    browser = await (await open_browser(embedded_with_quick_checks)).login(customer.username)
    socket = await open_socket(embedded_with_quick_checks, browser)
    await receive_hello(socket)

    await age(order, minutes=2)  # past UNPAID_ORDER_TIMEOUT_MINUTES

    cancelled = await receive_notification(socket, timeout=15)  # the next run, within 0.5 s or so
    assert (cancelled["order"]["id"], cancelled["order"]["status"]) == (order.pk, OrderStatus.CANCELLED)
    assert cancelled["changed_by"]["role"] == "system"
    assert "Traceback" not in embedded_with_quick_checks.process.log_text()


async def place(customer) -> Order:
    return await asyncio.to_thread(in_own_thread, place_order, customer=customer)


async def age(order: Order, *, minutes: int) -> None:
    created_at = timezone.now() - timedelta(minutes=minutes)
    await asyncio.to_thread(in_own_thread, Order.objects.filter(pk=order.pk).update, created_at=created_at)
