"""Every page a customer meets fits a 390 px wide phone: nothing wider than the screen, so nothing scrolls sideways."""

from decimal import Decimal

import pytest
from django.core.files import File
from playwright.sync_api import expect

from accounts.services import customer_address_create
from orders.models import OrderStatus
from shop.management.commands.seed_demo import DEMO_IMAGES
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


def test_the_catalog_shows_each_products_picture_and_price_on_a_desktop_and_a_phone(open_session, screenshot):
    for name, price in [("Pour-Over Kettle", "59.00"), ("Hand Grinder", "89.00"), ("Travel Mug", "27.90")]:
        slug = name.lower().replace(" ", "-")
        in_own_thread(demo_product, name=name, slug=slug, price=Decimal(price))
    page = open_session("visitor").new_page()

    page.goto("/?sort=-price")

    cards = page.locator(".product-grid .card")
    expect(cards).to_have_count(3)
    expect(cards.first).to_contain_text("€89.00")
    # Every picture loaded (a broken one has no natural width) from the shop's own /media/.
    pictures = page.locator(".product-image")
    expect(pictures).to_have_count(3)
    for index in range(3):
        expect(pictures.nth(index)).to_have_js_property("naturalWidth", 480)
    assert all(
        src.startswith("/media/products/")
        for src in pictures.evaluate_all("els => els.map(e => e.getAttribute('src'))")
    )
    screenshot(page, "catalog")
    page.set_viewport_size(PHONE)
    assert overflow(page, "/?sort=-price") is None
    screenshot(page, "catalog-phone")


def demo_product(**fields):
    """A product with its demo catalog picture (shop/demo_images/), as seed_demo gives it."""
    product = ProductFactory(**fields)
    with (DEMO_IMAGES / f"{product.slug}.png").open("rb") as picture:
        product.image.save(f"{product.slug}.png", File(picture), save=True)
    return product
