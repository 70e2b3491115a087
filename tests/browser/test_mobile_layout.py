"""Every page a customer meets fits a 390 px wide phone: nothing wider than the screen, so nothing scrolls sideways."""

import pytest
from playwright.sync_api import expect

from accounts.services import customer_address_create
from orders.models import OrderStatus
from tests.browser.data import place
from tests.browser.pages import customer_login
from tests.conftest import requires_postgres, requires_redis
from tests.factories import CHECKOUT_ADDRESS, ProductFactory
from tests.live.servers import in_own_thread, live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

PHONE = {"width": 390, "height": 844}  # an iPhone 12-15's CSS pixels
SIGNED_OUT_PAGES = ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
SIGNED_IN_PAGES = ["/", "/cart/", "/checkout/", "/orders/", "/notifications/", "/notifications/preferences/",
                   "/accounts/", "/accounts/addresses/new/", "/accounts/password/"]  # fmt: skip

# The widest element not inside a box that scrolls sideways of its own (a wide table may, in a .table-wrap): what to
# fix when a page does not fit.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const clipped = (node) => {
    for (let up = node.parentElement; up && up !== document.body; up = up.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(up).overflowX)) return true;
    }
    return false;
  };
  let widest = null;
  for (const node of document.body.querySelectorAll("*")) {
    if (clipped(node)) continue;
    const right = node.getBoundingClientRect().right;
    if (right > width + 0.5 && (!widest || right > widest.right)) {
      const text = (node.textContent || "").trim().slice(0, 40);
      widest = { right, tag: node.tagName.toLowerCase(), cls: node.className.toString(), text };
    }
  }
  return { scroll: document.documentElement.scrollWidth, width, widest };
}"""


def overflow(page, path: str) -> dict | None:
    page.goto(path)
    measured = page.evaluate(OVERFLOW)
    return None if measured["scroll"] <= PHONE["width"] else {"path": path, **measured}


def test_every_page_fits_a_390_px_phone_signed_out(open_session):
    page = open_session("visitor").new_page()
    page.set_viewport_size(PHONE)
    product = in_own_thread(ProductFactory, name="A kettle with a rather long name for a narrow screen")
    assert [o for path in [*SIGNED_OUT_PAGES, product.get_absolute_url()] if (o := overflow(page, path))] == []


def test_every_page_fits_a_390_px_phone_signed_in_with_a_full_cart_and_an_order(open_session, customer):
    products = [
        in_own_thread(ProductFactory, name=f"Long product name number {n} for the cart", stock=100) for n in range(3)
    ]
    order = place(customer=customer, products=products, quantity=12, status=OrderStatus.SHIPPED)
    # An address book entry with long lines, as the account page lists it and checkout's form is filled with it.
    long_address = {**CHECKOUT_ADDRESS, "line1": "Hauptstraße 123, Hinterhof, Aufgang B, dritter Stock links"}
    in_own_thread(customer_address_create, customer=customer, address=long_address)
    page = customer_login(open_session("customer"), customer)
    page.set_viewport_size(PHONE)
    for product in products:  # a cart with several lines, as checkout shows it too
        page.goto(product.get_absolute_url())
        page.get_by_role("button", name="Add to cart").click()
    pages = [*SIGNED_IN_PAGES, order.get_absolute_url(), products[0].get_absolute_url()]
    assert [o for path in pages if (o := overflow(page, path))] == []
    # What was measured: checkout with its address form filled from the book, the account page listing the entry.
    page.goto("/checkout/")
    expect(page.locator("#id_line1")).to_have_value(long_address["line1"])
    page.goto("/accounts/")
    expect(page.locator(".address-book")).to_contain_text(long_address["line1"])
