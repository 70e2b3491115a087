"""The catalog page: search by words, sort by name, price or newest, pages that keep both, and no N+1 queries."""

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

CATALOG = reverse("shop:home")


def names_on(response) -> list[str]:
    return [product.name for product in response.context["products"]]


def test_a_search_finds_products_by_name_or_description_in_any_case(client):
    ProductFactory(name="Pour-Over Kettle", description="Gooseneck spout.")
    ProductFactory(name="Travel Mug", description="Fits a kettle-shaped cup holder.")
    ProductFactory(name="Hand Grinder", description="Steel burrs.")

    response = client.get(CATALOG, {"q": "KETTLE"})

    assert response.status_code == 200
    assert names_on(response) == ["Pour-Over Kettle", "Travel Mug"]


def test_a_search_never_shows_inactive_products(client):
    ProductFactory(name="Kettle, old model", is_active=False)
    assert names_on(client.get(CATALOG, {"q": "kettle"})) == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", ["Beans", "Cups", "Scale"]),
        ("name", ["Beans", "Cups", "Scale"]),
        ("price", ["Beans", "Cups", "Scale"]),
        ("-price", ["Scale", "Cups", "Beans"]),
        ("newest", ["Cups", "Beans", "Scale"]),
    ],
)
def test_the_catalog_is_sorted_as_asked(client, sort, expected):
    ProductFactory(name="Scale", price=Decimal("39.00"))
    ProductFactory(name="Beans", price=Decimal("14.50"))
    ProductFactory(name="Cups", price=Decimal("24.00"))

    assert names_on(client.get(CATALOG, {"sort": sort})) == expected


def test_an_unknown_order_is_a_400_that_names_the_field_and_still_shows_the_catalog(client):
    ProductFactory(name="Scale")

    response = client.get(CATALOG, {"sort": "price; DROP TABLE", "q": "sca"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.text
    assert names_on(response) == ["Scale"]  # the valid search still applies, in the default order


def test_nothing_found_says_so_with_the_words_as_text(client):
    ProductFactory(name="Scale")

    response = client.get(CATALOG, {"q": "<b>teapot</b>"})

    assert "Nothing matches “&lt;b&gt;teapot&lt;/b&gt;”" in response.text
    assert "<b>teapot" not in response.text


def test_the_page_links_keep_the_search_and_the_order(client):
    for number in range(30):
        ProductFactory(name=f"Mug {number:02}", price=Decimal(number))

    response = client.get(CATALOG, {"q": "mug", "sort": "-price"})

    assert names_on(response)[0] == "Mug 29"
    assert 'href="?q=mug&amp;sort=-price&amp;page=2"' in response.text
    second = client.get(CATALOG, {"q": "mug", "sort": "-price", "page": 2})
    assert names_on(second) == [f"Mug {number:02}" for number in range(5, -1, -1)]


def test_the_catalog_costs_the_same_queries_for_one_product_as_for_a_full_page(client, django_assert_num_queries):
    ProductFactory()
    with django_assert_num_queries(2):  # the count for the pages, and the page
        client.get(CATALOG, {"q": "", "sort": "price"})
    for _ in range(23):
        ProductFactory()
    with django_assert_num_queries(2):
        client.get(CATALOG, {"q": "", "sort": "price"})


def test_the_product_page_costs_one_query(client, django_assert_num_queries):
    product = ProductFactory()
    with django_assert_num_queries(1):
        client.get(product.get_absolute_url())
