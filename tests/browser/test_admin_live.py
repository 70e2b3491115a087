"""The live Django admin in a real browser: what one staff member sees when another changes an order.

Every staff socket joins the `staff` group and hears `order_changed` for any order;
static/js/pages/admin.js updates the change list row in place and warns on an open change
form that its order has moved on (saving it would be refused as stale).
"""

import re

import pytest
from playwright.sync_api import expect

from orders.models import OrderStatus
from tests.browser.data import place
from tests.browser.pages import (
    admin_change_status,
    admin_change_url,
    admin_hide_nav_sidebar,
    admin_row,
    expect_not_reloaded,
    mark_page,
    staff_login,
    wait_for_hello,
)
from tests.conftest import requires_postgres, requires_redis
from tests.factories import StaffFactory
from tests.live.servers import live_db, with_servers_password

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

CHANGE_LIST = "/admin/orders/order/"
LIVE_CHANGED = re.compile(r"\blive-changed\b")


@pytest.fixture
def other_staff(db, servers_password_hash):
    """A second staff member who can log in to the servers' admin."""
    return with_servers_password(StaffFactory(), servers_password_hash)


@pytest.fixture
def order(customer):
    return place(customer=customer, status=OrderStatus.PENDING_PAYMENT)


def test_change_list_row_and_open_change_form_update_live_when_another_staff_member_saves_the_order(
    open_session, screenshot, customer, staff, other_staff, order
):
    untouched = place(customer=customer, status=OrderStatus.PENDING_PAYMENT)
    watcher = open_session("watcher")
    change_list = staff_login(watcher, staff)
    change_list.goto(CHANGE_LIST)
    admin_hide_nav_sidebar(change_list)  # room for every column at this window size
    wait_for_hello(watcher, change_list)
    change_form = watcher.new_page()
    change_form.goto(admin_change_url(order))
    wait_for_hello(watcher, change_form)
    for page in (change_list, change_form):
        mark_page(page)
    expect(admin_row(change_list, order).locator("td.field-status")).to_have_text("Pending payment")

    editor = staff_login(open_session("editor"), other_staff)
    admin_change_status(editor, order, OrderStatus.PAID, internal_note="Bank transfer arrived")

    row = admin_row(change_list, order)
    expect(row).to_have_class(LIVE_CHANGED)
    expect(row.locator("td.field-status")).to_have_text("Paid")
    expect(row).to_have_attribute("title", f"Changed by {other_staff.username} to Paid")
    expect(admin_row(change_list, untouched)).not_to_have_class(LIVE_CHANGED)
    expect(admin_row(change_list, untouched).locator("td.field-status")).to_have_text("Pending payment")

    banner = change_form.locator("#live-changed-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"Order {order.number} was changed by {other_staff.username} (now Paid).")
    expect(banner.get_by_role("link", name="Reload")).to_have_attribute("href", admin_change_url(order))
    for page in (change_list, change_form):
        expect_not_reloaded(page)
    screenshot(change_list, "change-list-live-row")
    screenshot(change_form, "change-form-banner")

    # The banner's advice holds: the stale form is refused, the reloaded one shows the new status.
    change_form.locator("#id_status").select_option(OrderStatus.CANCELLED)
    with change_form.expect_navigation():
        change_form.locator('input[name="_save"]').click()
    stale_error = change_form.locator("ul.errorlist.nonfield")
    expect(stale_error).to_contain_text(f"Order {order.number} was changed by someone else")
    change_form.goto(admin_change_url(order))
    expect(change_form.locator("#id_status")).to_have_value(OrderStatus.PAID)


def test_change_list_updates_live_when_another_staff_member_runs_a_bulk_action(
    open_session, screenshot, customer, staff, other_staff
):
    first, second = (place(customer=customer, status=OrderStatus.PAID) for _ in range(2))
    left_alone = place(customer=customer, status=OrderStatus.PAID)
    watcher = open_session("watcher")
    change_list = staff_login(watcher, staff)
    change_list.goto(CHANGE_LIST)
    admin_hide_nav_sidebar(change_list)  # room for every column at this window size
    wait_for_hello(watcher, change_list)
    mark_page(change_list)

    editor_session = open_session("editor")
    editor = staff_login(editor_session, other_staff)
    editor.goto(CHANGE_LIST)
    for order in (first, second):
        admin_row(editor, order).locator("input.action-select").check()
    editor.locator('select[name="action"]').select_option("mark_processing")
    with editor.expect_navigation():
        editor.locator('button[name="index"]').click()
    expect(editor.locator("ul.messagelist li.success")).to_have_text("2 order(s) marked processing.")

    for order in (first, second):
        row = admin_row(change_list, order)
        expect(row).to_have_class(LIVE_CHANGED)
        expect(row.locator("td.field-status")).to_have_text("Processing")
    expect(admin_row(change_list, left_alone)).not_to_have_class(LIVE_CHANGED)
    expect(admin_row(change_list, left_alone).locator("td.field-status")).to_have_text("Paid")
    expect_not_reloaded(change_list)
    screenshot(change_list, "change-list-bulk-action")


def test_mark_shipped_asks_each_orders_tracking_number_on_one_page_then_ships_them(
    open_session, screenshot, customer, staff
):
    by_dhl, by_ups = (place(customer=customer, status=OrderStatus.PROCESSING) for _ in range(2))
    pending = place(customer=customer, status=OrderStatus.PENDING_PAYMENT)
    page = staff_login(open_session("staff"), staff)
    page.goto(CHANGE_LIST)
    for order in (by_dhl, by_ups, pending):
        admin_row(page, order).locator("input.action-select").check()
    page.locator('select[name="action"]').select_option("mark_shipped")
    with page.expect_navigation():
        page.locator('button[name="index"]').click()

    rows = page.locator("#ship-orders tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#ship-orders-skipped")).to_have_text(f"{pending.number} (pending payment)")
    page.get_by_label("Carrier:").select_option("dhl")
    page.get_by_label(f"Tracking number of {by_dhl.number}").fill("0034 0434 1610 9404 2557")
    page.get_by_label(f"Carrier of {by_ups.number}").select_option("ups")
    page.get_by_label(f"Tracking number of {by_ups.number}").fill("1Z999AA10123456784<")
    with page.expect_navigation():
        page.get_by_role("button", name="Mark shipped").click()

    # A number the carrier does not issue: the page again, with the error beside it, and nothing shipped.
    expect(rows.nth(1).locator(".errorlist")).to_contain_text("That is not a UPS tracking number")
    expect(page.get_by_label(f"Tracking number of {by_dhl.number}")).to_have_value("0034 0434 1610 9404 2557")
    screenshot(page, "ship-orders-error")
    page.get_by_label(f"Tracking number of {by_ups.number}").fill("1Z999AA10123456784")
    with page.expect_navigation():
        page.get_by_role("button", name="Mark shipped").click()

    expect(page.locator("ul.messagelist li.success")).to_have_text("2 order(s) marked shipped.")
    expect(page.locator("ul.messagelist li.warning")).to_contain_text(f"Order {pending.number} cannot go")
    page.goto(admin_change_url(by_ups))
    expect(page.locator(".field-tracking .readonly a")).to_have_text("UPS 1Z999AA10123456784")
    expect(page.locator(".field-tracking .readonly a")).to_have_attribute(
        "href", "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    )
