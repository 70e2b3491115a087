"""The support app's channel-layer groups: named from the order, joined only after the server authorised the user."""

from notifications.groups import user_group


def conversation_staff_group(order_id: int) -> str:
    """The staff sockets watching one order's conversation (joined on `chat.open`, left on `chat.close`)."""
    return f"support.order.{int(order_id)}"


# The staff sockets showing the inbox (joined on `chat.inbox`): told only which order's conversation changed.
INBOX_GROUP = "support.inbox"


def customer_presence_group(customer_id: int) -> str:
    """The staff sockets watching a conversation of this customer: told when the customer's sockets come and go."""
    return f"support.customer.{int(customer_id)}"


def typing_audience(*, order_id: int, customer_id: int, from_staff: bool) -> str:
    """Who hears one side typing: the other side only (staff's typing the customer's sockets, and the reverse)."""
    return user_group(customer_id) if from_staff else conversation_staff_group(order_id)
