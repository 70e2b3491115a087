"""Who may take part in an order's conversation, what a message may say, and when staff's replies become a
notification for the customer: one function for each rule."""

import re
from datetime import timedelta

from django.conf import settings

from orders.models import Order
from orders.notifications import staff_member
from support.models import BODY_MAX_LENGTH

# Control characters but newline and tab, and lone surrogates (JSON's "\ud800" parses; PostgreSQL cannot store it).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class ChatRefused(Exception):
    """A chat request the rules refuse, before anything is stored or sent: `code` is its error frame's."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def sees_internal_notes(user) -> bool:
    """Staff read and write internal notes; a customer never sees one. The staff audience's rule, so the two agree."""
    return staff_member(user)


def inbox_viewer(user) -> bool:
    """Who sees the staff inbox, over HTTP and on the socket alike: active staff allowed to view conversations."""
    return user.is_active and sees_internal_notes(user) and user.has_perm("support.view_conversation")


def order_for_participant(*, user, order_id: int) -> Order:
    """The order, if `user` may read and post in its conversation (its customer, or staff); else ChatRefused.

    Another customer's order and an order that does not exist are refused alike, so ids reveal nothing.
    """
    orders = Order.objects.all() if sees_internal_notes(user) else Order.objects.filter(customer_id=user.pk)
    order = orders.filter(pk=order_id).only("pk", "customer_id").first()
    if order is None:
        raise ChatRefused("unknown_order", "No such order among yours.")
    return order


def message_body_clean(body: object) -> str:
    """The body as stored: plain text, line ends as "\\n", trimmed, 1 to BODY_MAX_LENGTH characters."""
    if not isinstance(body, str):
        raise ChatRefused("invalid_field", '"body" must be a string.')
    text = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ChatRefused("empty_body", "A message needs some text.")
    if len(text) > BODY_MAX_LENGTH:
        raise ChatRefused("body_too_long", f"A message is at most {BODY_MAX_LENGTH} characters.")
    if _UNSTORABLE.search(text):
        raise ChatRefused("invalid_body", "A message is text: no control characters but newlines and tabs.")
    return text


def unread_replies(*, messages, customer_read_seq: int) -> list:
    """Of `messages`, staff's replies the customer has not read (past their mark): never a note, never their own."""
    return [m for m in messages if m.from_staff and not m.internal and m.seq > customer_read_seq]


def reply_notice_due(*, replies: list, now) -> bool:
    """Unread replies become one notification once the oldest has waited CHAT_NOTIFY_DELAY seconds unread (the
    customer was not on the page to read it); the newest then speaks for all of them."""
    return bool(replies) and replies[0].created_at <= now - timedelta(seconds=settings.CHAT_NOTIFY_DELAY)
