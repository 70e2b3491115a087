"""What clients see: the JSON frames of the WebSocket protocol (docs/protocol.md) and their wording."""

from notifications.selectors import UnreadState
from orders.models import Order, OrderStatus

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


def order_status_payload(order: Order, *, previous_status: str | None, customer_message: str = "") -> dict:
    """The stored payload of an `order.status_changed` notification: all the customer is ever sent of it.

    Socket frames, the notification centre (and any later channel, such as email) render from this alone,
    so what staff wrote as an internal note cannot reach them: it is never an argument here.
    """
    title, body = ORDER_STATUS_MESSAGES[order.status]
    return {
        "order": order_summary(order, previous_status=previous_status),
        "title": title.format(number=order.number),
        "body": body,
        "message": customer_message,
        "url": order.get_absolute_url(),
    }


def notification_frame(notification, *, unread: UnreadState) -> dict:
    """A `notification` frame: the stored payload plus its place in the user's sequence, and the unread count."""
    return {
        "type": "notification",
        "seq": notification.seq,
        "kind": notification.kind,
        "created_at": notification.created_at.isoformat(timespec="microseconds"),
        **notification.payload,
        "unread": unread.count,
        "unread_version": unread.version,
    }


def order_changed_frame(notification, *, actor_name: str | None) -> dict:
    """An `order_changed` frame for staff: any customer's order, live only (no seq)."""
    return {
        "type": "order_changed",
        "order": notification.payload["order"],
        "customer_id": notification.recipient_id,
        "actor": actor_name,
        "created_at": notification.created_at.isoformat(timespec="microseconds"),
    }


def hello_frame(*, user_id: int, last_seq: int, unread: UnreadState) -> dict:
    return {
        "type": "hello",
        "user_id": user_id,
        "last_seq": last_seq,
        "unread": unread.count,
        "unread_version": unread.version,
    }


def unread_frame(*, unread: UnreadState, read_seqs: list[int] | None) -> dict:
    """The new unread count after a mark-read; `read_seqs` are the seqs marked, or None for all."""
    return {"type": "unread", "unread": unread.count, "unread_version": unread.version, "read_seqs": read_seqs}


def error_frame(code: str, detail: str) -> dict:
    return {"type": "error", "code": code, "detail": detail}
