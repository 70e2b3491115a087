"""What customers do to orders: place one from a cart (the order, its items and its first history event), and
cancel one they have not paid for yet."""

from collections.abc import Mapping
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from accounts.models import ADDRESS_FIELDS
from notifications.groups import user_group
from notifications.services import live_frames_send_on_commit
from orders.models import Order, OrderAddress, OrderEvent, OrderEventType, OrderItem, OrderStatus, format_order_number
from orders.notifications import order_placed_frame
from orders.tasks import schedule_payment_confirmation
from orders.transitions import StaleOrder, order_transition
from shop.models import Product

MAX_QUANTITY_PER_LINE = 100


class CheckoutError(Exception):
    """Checkout refused; the message is fit to show to the customer. Nothing was written."""


def order_place(
    *, customer, quantities: dict[int, int], note: str = "", address: Mapping[str, str] | None = None
) -> Order:
    """Create an order for `customer` from {product_id: quantity}, taking the stock, shipping to `address`.

    The address (checkout's form requires one) is copied onto the order, so a later edit of the address book
    leaves it as it was.

    Prices come from the catalog, never from the client. Products are locked in
    id order, so two checkouts of the last item cannot both succeed and two
    checkouts of overlapping carts cannot deadlock.
    """
    if not quantities:
        raise CheckoutError("Your cart is empty.")
    for quantity in quantities.values():
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise CheckoutError("Every quantity must be a whole number of at least 1.")
        if quantity > MAX_QUANTITY_PER_LINE:
            raise CheckoutError(f"At most {MAX_QUANTITY_PER_LINE} of one product per order.")

    with transaction.atomic():
        products = list(
            Product.objects.select_for_update().filter(pk__in=quantities.keys(), is_active=True).order_by("pk")
        )
        if len(products) != len(quantities):
            raise CheckoutError("A product in your cart is no longer available.")
        for product in products:
            if quantities[product.pk] > product.stock:
                raise CheckoutError(
                    f"Only {product.stock} of “{product.name}” left in stock."
                    if product.stock
                    else f"“{product.name}” is out of stock."
                )

        order = Order.objects.create(customer=customer, note=note, status=OrderStatus.PENDING_PAYMENT)
        items = []
        for product in products:
            quantity = quantities[product.pk]
            product.stock -= quantity
            product.save(update_fields=["stock"])
            items.append(
                OrderItem(
                    order=order,
                    product=product,
                    product_name=product.name,
                    unit_price=product.price,
                    quantity=quantity,
                    line_total=product.price * quantity,
                )
            )
        OrderItem.objects.bulk_create(items)
        if address is not None:
            OrderAddress.objects.create(order=order, **{field: address.get(field) or "" for field in ADDRESS_FIELDS})
        order.number = format_order_number(order.pk)
        order.total = sum((item.line_total for item in items), Decimal("0.00"))
        order.save(update_fields=["number", "total"])
        OrderEvent.objects.create(order=order, type=OrderEventType.PLACED, new_status=order.status, actor=customer)
        # Every tab showing My orders lists it, wherever it was placed (another tab, a task).
        live_frames_send_on_commit([(user_group(customer.pk), order_placed_frame(order))])
        if settings.SIMULATE_ORDER_PROGRESS:
            schedule_payment_confirmation(order_id=order.pk)
    return order


# A customer may cancel only before paying: after that the shop has work (and money) in hand, and staff decide.
CUSTOMER_CANCELLABLE_STATUS = OrderStatus.PENDING_PAYMENT


class CancelRefused(Exception):
    """The customer's cancel was refused; the message is fit to show them. Nothing was written."""


def order_cancellable_by_customer(order: Order) -> bool:
    """Whether the order page offers its customer "Cancel this order"."""
    return order.status == CUSTOMER_CANCELLABLE_STATUS


def order_cancel_by_customer(*, customer, order: Order) -> Order:
    """Cancel `customer`'s own `order` while it awaits payment: the stock goes back, history and notification follow.

    Through `order_transition` like every status change, and only from CUSTOMER_CANCELLABLE_STATUS as it is under
    the lock: a payment confirmed meanwhile wins, and the customer is told.
    """
    if order.customer_id != customer.pk:
        raise CancelRefused("That is not one of your orders.")
    try:
        return order_transition(
            order_id=order.pk,
            to_status=OrderStatus.CANCELLED,
            actor=customer,
            expected_status=CUSTOMER_CANCELLABLE_STATUS,
        )
    except StaleOrder as stale:
        now = OrderStatus(stale.order.status).label.lower()
        raise CancelRefused(
            f"Order {stale.order.number} is {now} now, so it can no longer be cancelled here. Contact us instead."
        ) from None
