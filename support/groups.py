"""The support app's channel-layer groups: named from the order, joined only after the server authorised the user."""


def conversation_staff_group(order_id: int) -> str:
    """The staff sockets watching one order's conversation (joined on `chat.open`, left on `chat.close`)."""
    return f"support.order.{int(order_id)}"


# The staff sockets showing the inbox (joined on `chat.inbox`): told only which order's conversation changed.
INBOX_GROUP = "support.inbox"
