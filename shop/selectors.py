"""Reads of the catalog: what a customer browsing it is shown, in the order they chose."""

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from shop.models import Product


@dataclass(frozen=True)
class CatalogSort:
    label: str
    ordering: tuple[str, ...]


# The orders a customer may browse the catalog in, by the value the page sends; the first is the default.
CATALOG_SORTS = {
    "name": CatalogSort("Name", ("name",)),
    "price": CatalogSort("Price: low to high", ("price", "name")),
    "-price": CatalogSort("Price: high to low", ("-price", "name")),
    "newest": CatalogSort("Newest", ("-created_at",)),
}
CATALOG_DEFAULT_SORT = next(iter(CATALOG_SORTS))


def catalog_products(*, search: str = "", sort: str = CATALOG_DEFAULT_SORT) -> QuerySet[Product]:
    """The active products whose name or description holds `search` (any case), in the chosen order: one query."""
    products = Product.objects.filter(is_active=True)
    if search:
        products = products.filter(Q(name__icontains=search) | Q(description__icontains=search))
    # The primary key last: a stable order, so no product shows on two pages or none.
    return products.order_by(*CATALOG_SORTS[sort].ordering, "pk")
