"""The orders' notification kind: a customer's order changed status (frames in docs/protocol.md).

Registered with the notifications service from `OrdersConfig.ready()`: its wording and payload here, and
its fan-out, the live `order_changed` frame every staff socket gets for any customer's order (the staff
audience, registered there too).
"""

from decimal import Decimal

from notifications.groups import STAFF_GROUP
from notifications.kinds import Channel, NotificationKind, Topic
from notifications.models import Notification
from notifications.services import notification_record, notifications_record_many
from orders.models import ChangedBy, Order, OrderAddress, OrderItem, OrderStatus, changed_by_of

# Title and body of the notification a customer gets when their order enters a status.
ORDER_STATUS_MESSAGES: dict[str, tuple[str, str]] = {
    OrderStatus.PENDING_PAYMENT: ("Order {number} is waiting for payment", "We'll start as soon as it's paid."),
    OrderStatus.PAID: ("Payment received for order {number}", "Thank you! We'll prepare it shortly."),
    OrderStatus.PROCESSING: ("Order {number} is being prepared", "We're packing your items."),
    OrderStatus.SHIPPED: ("Order {number} has shipped", "It's on its way to you."),
    OrderStatus.DELIVERED: ("Order {number} was delivered", "Enjoy! Tell us if anything is wrong."),
    OrderStatus.CANCELLED: ("Order {number} was cancelled", "Nothing will be shipped or charged."),
    OrderStatus.REFUNDED: ("Order {number} was refunded", "The money is on its way back to you."),
}


def order_summary(order: Order, *, previous_status: str | None) -> dict:
    return {
        "id": order.pk,
        "number": order.number,
        "status": order.status,
        "status_label": OrderStatus(order.status).label,
        "previous_status": previous_status,
        # Lets a page that rendered version N ignore news it already shows.
        "version": order.version,
    }


def order_status_payload(
    order: Order, *, previous_status: str | None, customer_message: str = "", changed_by: ChangedBy = ChangedBy.SYSTEM
) -> dict:
    """The stored payload of an `order.status_changed` notification: all the customer is ever sent of it.

    Socket frames, the notification centre (and any later channel, such as email) render from this alone,
    so what staff wrote as an internal note cannot reach them: it is never an argument here.
    """
    title, body = ORDER_STATUS_MESSAGES[order.status]
    payload = {
        "order": order_summary(order, previous_status=previous_status),
        "title": title.format(number=order.number),
        "body": body,
        "message": customer_message,
        # Who, in the order page's words (its timeline says "by you", "by staff", "by system" after a reload too).
        "changed_by": {"role": changed_by.value, "label": changed_by.label},
        "url": order.get_absolute_url(),
    }
    # From shipped on, once it shipped with one: the carrier's label, the number and the link built from them.
    if (tracking := order.tracking) is not None:
        payload["tracking"] = tracking.payload()
    return payload


def order_placed_frame(order: Order) -> dict:
    """An `order_placed` frame for the customer's own sockets: a new order to list (live only, no seq).

    Only what names it: My orders refetches its rows from the server, so a row looks as a reload renders it.
    """
    return {"type": "order_placed", "order": {"id": order.pk, "number": order.number}}


def order_changed_frame(notification: Notification) -> dict:
    """An `order_changed` frame for staff: any customer's order, live only (no seq)."""
    actor = notification.actor
    return {
        "type": "order_changed",
        "order": notification.payload["order"],
        "customer_id": notification.recipient_id,
        "actor": actor.get_username() if actor else None,
        "created_at": notification.created_at.isoformat(timespec="microseconds"),
    }


def staff_member(user) -> bool:
    """Who is in the staff audience (notifications/groups.py): the users who work in the admin."""
    return user.is_staff


def order_status_fanout(notification: Notification) -> list[tuple[str, dict]]:
    """Staff hear of every order's change, live, whoever the customer."""
    return [(STAFF_GROUP, order_changed_frame(notification))]


# What a customer can choose channels for: one topic per status. Email and push are on by default for the news
# a customer acts on or waits for; payment and packing show in-app only.
_OFFLINE_BY_DEFAULT = {OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.REFUNDED}
ORDER_STATUS_TOPICS = tuple(
    Topic(
        key=f"order.{status}",
        label=f"An order is {status.label.lower()}",
        offline_defaults=frozenset({Channel.EMAIL, Channel.PUSH}) if status in _OFFLINE_BY_DEFAULT else frozenset(),
    )
    for status in OrderStatus
    if status != OrderStatus.PENDING_PAYMENT  # the customer is on the page that placed it
)


def order_status_topic(payload: dict) -> str:
    return f"order.{payload['order']['status']}"


def order_status_email_context(notification: Notification) -> dict:
    """An order's part of an email: its items with quantities and prices, where it ships, and the tracking link.

    From the payload and the order's items only, like every channel: what staff wrote as an internal note is never read.
    """
    payload = notification.payload
    items = list(
        OrderItem.objects.filter(order_id=payload["order"]["id"])
        .order_by("pk")
        .values("product_name", "quantity", "unit_price", "line_total")
    )
    tracking = payload.get("tracking")
    if isinstance(tracking, dict) and not str(tracking.get("url", "")).startswith("https://"):
        tracking = {**tracking, "url": ""}  # only a web address becomes a link; anything else is dropped
    address = OrderAddress.objects.filter(order_id=payload["order"]["id"]).first()  # the snapshot, not the book
    return {
        "items": items,
        "address_lines": address.lines() if address else [],
        "total": sum((item["line_total"] for item in items), start=Decimal("0.00")),
        "tracking": tracking if isinstance(tracking, dict) else None,
    }


ORDER_STATUS_CHANGED = NotificationKind(
    name="order.status_changed",
    fanout=order_status_fanout,
    topics=ORDER_STATUS_TOPICS,
    topic_of=order_status_topic,
    email_template="orders/email/order_status_changed",
    email_context=order_status_email_context,
)


def notification_record_order_status_change(
    *, order: Order, previous_status: str | None, actor=None, customer_message: str = ""
) -> Notification:
    """Tell the order's customer (and, live, the staff) that its status changed, with staff's message to them."""
    return notification_record(**_order_status_notification(order, previous_status, actor, customer_message))


def notifications_record_order_status_changes(
    *, changes: list[tuple[Order, str]], actor=None, customer_message: str = ""
) -> list[Notification]:
    """`notification_record_order_status_change` for many (order, previous status) pairs at once: a bulk change's.

    The same payload each, so a customer cannot tell a bulk change from a single one.
    """
    return notifications_record_many(
        notifications=[
            Notification(**_order_status_notification(order, previous_status, actor, customer_message))
            for order, previous_status in changes
        ]
    )


def _order_status_notification(order: Order, previous_status: str | None, actor, customer_message: str) -> dict:
    """What an order's status change notifies its customer of: one change or many alike."""
    return {
        "recipient_id": order.customer_id,
        "kind": ORDER_STATUS_CHANGED.name,
        "payload": order_status_payload(
            order,
            previous_status=previous_status,
            customer_message=customer_message,
            changed_by=changed_by_of(actor_id=actor.pk if actor else None, customer_id=order.customer_id),
        ),
        "actor": actor,
    }
