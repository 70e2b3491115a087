"""The factories the tests use; they live in shop/factories.py because seed_demo needs them at runtime."""

from shop.factories import (
    CHECKOUT_ADDRESS,
    DEFAULT_PASSWORD,
    ProductFactory,
    StaffFactory,
    UserFactory,
    path_to,
    place_order,
)

__all__ = [
    "CHECKOUT_ADDRESS",
    "DEFAULT_PASSWORD",
    "ProductFactory",
    "StaffFactory",
    "UserFactory",
    "path_to",
    "place_order",
]
