"""The session cart: product ids and quantities only, never prices.

Prices are read from the catalog at checkout, so a tampered session or POST
cannot change what an order costs.
"""

from dataclasses import dataclass
from decimal import Decimal

from shop.models import Product

SESSION_KEY = "cart"


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """A cart kept in the session as {product_id: quantity}."""

    def __init__(self, session):
        self.session = session
        self.quantities: dict[str, int] = _valid_quantities(session.get(SESSION_KEY))

    def set(self, *, product_id: int, quantity: int) -> None:
        """Set a product's quantity; zero removes it."""
        if quantity > 0:
            self.quantities[str(product_id)] = quantity
        else:
            self.quantities.pop(str(product_id), None)
        self._save()

    def add(self, *, product_id: int, quantity: int) -> None:
        self.set(product_id=product_id, quantity=self.quantities.get(str(product_id), 0) + quantity)

    def clear(self) -> None:
        self.quantities = {}
        self._save()

    def lines(self) -> list[CartLine]:
        """The cart's lines with current catalog products; vanished or retired products drop out."""
        products = Product.objects.filter(is_active=True).in_bulk([int(pk) for pk in self.quantities])
        return [
            CartLine(product=products[int(pk)], quantity=quantity)
            for pk, quantity in self.quantities.items()
            if int(pk) in products
        ]

    def as_quantities(self) -> dict[int, int]:
        return {int(pk): quantity for pk, quantity in self.quantities.items()}

    def __len__(self) -> int:
        return sum(self.quantities.values())

    def _save(self) -> None:
        self.session[SESSION_KEY] = self.quantities
        self.session.modified = True


def _valid_quantities(stored) -> dict[str, int]:
    """The stored cart with anything malformed dropped: a session is data, not trusted input."""
    if not isinstance(stored, dict):
        return {}
    return {
        pk: quantity
        for pk, quantity in stored.items()
        # isascii() too: str.isdigit() accepts "²" and other digits int() refuses (tests/shop/test_form_fuzz.py).
        if isinstance(pk, str) and pk.isascii() and pk.isdigit() and type(quantity) is int and quantity > 0
    }
