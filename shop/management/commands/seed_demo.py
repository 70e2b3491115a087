"""Fill the shop with a demo catalog, a staff account and customers with orders. Safe to run again."""

import uuid
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import customer_address_create
from notifications.offline import offline_deliveries_skip
from orders.models import OrderStatus
from shop.factories import (
    CHECKOUT_ADDRESS,
    DEFAULT_PASSWORD,
    ProductFactory,
    StaffFactory,
    UserFactory,
    path_to,
    place_order,
)
from support.services import message_post

# The demo catalog's pictures, by product slug: local files, so a fresh machine downloads nothing.
DEMO_IMAGES = Path(__file__).resolve().parents[2] / "demo_images"

CATALOG = [
    ("Espresso Cup Set", "Four stoneware cups, 80 ml each.", "24.00", 40),
    ("Pour-Over Kettle", "Gooseneck kettle with a thermometer in the lid.", "59.00", 15),
    ("Single-Origin Beans", "250 g of washed Ethiopian beans, roasted this week.", "14.50", 120),
    ("Hand Grinder", "Conical steel burrs, 30 grind settings.", "89.00", 8),
    ("Travel Mug", "Keeps coffee hot for six hours; fits car cup holders.", "27.90", 60),
    ("Milk Frother", "Battery-powered whisk for foamed milk.", "12.00", 75),
    ("Coffee Scale", "0.1 g resolution with a built-in timer.", "39.00", 20),
    ("Last Bag of Geisha", "Only one left, for testing sold-out checkouts.", "45.00", 1),
]

# What the demo's shipped (and delivered) orders were sent with, in turn: real carriers' sample numbers.
DEMO_TRACKING = [("dhl", "00340434161094042557"), ("ups", "1Z999AA10123456784"), ("royal_mail", "AB123456789GB")]

CUSTOMERS = [
    # username, first name, the statuses of the orders they already have
    ("alice", "Alice", [OrderStatus.DELIVERED, OrderStatus.SHIPPED, OrderStatus.PAID]),
    ("bob", "Bob", [OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED]),
    ("carol", "Carol", []),
]

# The support conversation on the first customer's delivered order: awaiting a reply, with a note only staff see.
DEMO_CONVERSATION = [
    ("customer", "The tracking says delivered, but the parcel isn't here. Could you check with the courier?", False),
    ("staff", "Opened a trace with the carrier; the driver's photo shows a different door.", True),
]


def ships(status: str) -> bool:
    """Whether an order on its way to `status` passes through shipped."""
    return OrderStatus.SHIPPED in path_to(status)


class Command(BaseCommand):
    help = "Create demo products, a staff user and customers with orders (idempotent; DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even when DEBUG is off (creates accounts with a known password).",
        )

    @transaction.atomic
    def handle(self, *args, allow_production=False, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError("seed_demo creates accounts with a known password; run it with DEBUG=true.")

        products = [
            ProductFactory(name=name, description=description, price=Decimal(price), stock=stock)
            for name, description, price, stock in CATALOG
        ]
        for product in products:
            picture = DEMO_IMAGES / f"{product.slug}.png"
            if not product.image and picture.exists():
                with picture.open("rb") as file:
                    product.image.save(picture.name, File(file), save=True)
        staff = StaffFactory(username="staff", email="staff@example.com", first_name="Sam")
        for number, (username, first_name, statuses) in enumerate(CUSTOMERS):
            customer = UserFactory(username=username, email=f"{username}@example.com", first_name=first_name)
            if customer.orders.exists():
                continue
            # Their address book's default, which pre-fills checkout and the demo orders were shipped to.
            address = {**CHECKOUT_ADDRESS, "full_name": f"{first_name} Example"}
            customer_address_create(customer=customer, address=address)
            for index, status in enumerate(statuses):
                carrier, tracking_number = DEMO_TRACKING[index % len(DEMO_TRACKING)] if ships(status) else ("", "")
                place_order(
                    customer=customer,
                    products=products[index : index + 2],
                    status=status,
                    carrier=carrier,
                    tracking_number=tracking_number,
                    address=address,
                )
            if number == 0:
                self._conversation(order=customer.orders.earliest("created_at"), customer=customer, staff=staff)
            # Their history is the demo's starting point, not news: nobody is emailed about it two minutes later.
            offline_deliveries_skip(recipient_id=customer.pk)

        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Customers: alice, bob, carol   password: {DEFAULT_PASSWORD}")
        self.stdout.write(f"  Staff:     staff               password: {DEFAULT_PASSWORD}   (admin at /admin/)")

    def _conversation(self, *, order, customer, staff) -> None:
        for side, body, internal in DEMO_CONVERSATION:
            author = customer if side == "customer" else staff
            message_post(author=author, order_id=order.pk, body=body, client_id=uuid.uuid4(), internal=internal)
