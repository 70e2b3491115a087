"""factory-boy factories for `manage.py seed_demo` and the tests.

They live in the runtime package, not in tests/, because seed_demo runs in the image and the image ships without tests/
(.dockerignore); tests/factories.py re-exports them.
"""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from orders.models import OrderStatus
from shop.models import Product

DEFAULT_PASSWORD = "shop-demo-pass"

# A name and shipping address as checkout's form posts it (accounts.models.ADDRESS_FIELDS).
CHECKOUT_ADDRESS = {
    "full_name": "Dana Weber",
    "line1": "Lindenstraße 12",
    "line2": "",
    "postcode": "10969",
    "city": "Berlin",
    "country": "DE",
    "phone": "+49 30 1234567",
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(DEFAULT_PASSWORD)


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    is_superuser = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.LazyAttribute(lambda product: product.name.lower().replace(" ", "-"))
    description = factory.Faker("paragraph")
    price = Decimal("19.90")
    stock = 10


def place_order(
    *,
    customer=None,
    products=None,
    quantity: int = 1,
    status: str = OrderStatus.PENDING_PAYMENT,
    actor=None,
    carrier: str = "",
    tracking_number: str = "",
    address: dict | None = None,
):
    """An order placed through checkout, then moved along the lifecycle to `status`.

    Orders are built through the real services, not a model factory, so their
    history and stock are exactly what production would produce. `carrier` and
    `tracking_number` go with its move to shipped, if its path has one; `address` is checkout's (none by default).
    """
    from orders.services import order_place
    from orders.transitions import order_transition

    customer = customer or UserFactory()
    products = products or [ProductFactory()]
    order = order_place(customer=customer, quantities={product.pk: quantity for product in products}, address=address)
    for step in path_to(status):
        tracking = {"carrier": carrier, "tracking_number": tracking_number} if step == OrderStatus.SHIPPED else {}
        order = order_transition(order_id=order.pk, to_status=step, actor=actor, **tracking)
    return order


def path_to(status: str) -> list[str]:
    """The statuses an order passes through after placement to reach `status`."""
    happy = [OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
    if status == OrderStatus.PENDING_PAYMENT:
        return []
    if status == OrderStatus.CANCELLED:
        return [OrderStatus.CANCELLED]
    if status == OrderStatus.REFUNDED:
        return [OrderStatus.PAID, OrderStatus.REFUNDED]
    return happy[: happy.index(status) + 1]
