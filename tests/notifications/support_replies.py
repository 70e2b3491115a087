"""A notification kind of a test app's own: support answered a customer, and staff see that it was answered.

It stands for the next kind a shop adds (a support chat): everything it needs lives in its own app, here,
and nothing under notifications/ names it. Registered on import, as its app's `AppConfig.ready()` would.
"""

from notifications.groups import STAFF_GROUP
from notifications.kinds import NotificationKind, notification_kind_register
from notifications.models import Notification
from notifications.services import notification_record


def support_answered_frame(notification: Notification) -> dict:
    """What staff sockets get, live: which customer was answered (the reply itself is the customer's)."""
    return {
        "type": "support_answered",
        "customer_id": notification.recipient_id,
        "created_at": notification.created_at.isoformat(timespec="microseconds"),
    }


def support_reply_fanout(notification: Notification) -> list[tuple[str, dict]]:
    return [(STAFF_GROUP, support_answered_frame(notification))]


SUPPORT_REPLY = notification_kind_register(NotificationKind(name="tests.support_reply", fanout=support_reply_fanout))


def notification_record_support_reply(*, customer_id: int, reply: str, actor=None) -> Notification:
    """Tell a customer that support answered them (in the caller's transaction, published after commit)."""
    return notification_record(
        recipient_id=customer_id,
        kind=SUPPORT_REPLY.name,
        payload={"title": "Support answered you", "body": reply, "url": "/support/"},
        actor=actor,
    )
