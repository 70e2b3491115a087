"""Reads of conversations: what a page opening one is sent, and the messages a socket missed."""

from dataclasses import dataclass

from django.db.models import Max, Q

from support.models import Conversation, ConversationRead, Message
from support.rules import order_for_participant, sees_internal_notes


def visible_messages(messages, *, staff_view: bool):
    """Of `messages`, those the viewer may see (all for staff, none of the internal notes for a customer)."""
    messages = messages.select_related("author")
    return messages if staff_view else messages.filter(internal=False)


def messages_between(*, order_id: int, after_seq: int, before_seq: int, staff_view: bool) -> list[Message]:
    """The messages the viewer may see with after_seq < seq < before_seq, in order (a socket's gap): one query."""
    messages = visible_messages(Message.objects.filter(conversation__order_id=order_id), staff_view=staff_view)
    return list(messages.filter(seq__gt=after_seq, seq__lt=before_seq).order_by("seq"))


def public_seq_at_or_before(*, conversation: Conversation, seq: int) -> int:
    """The seq of the last message up to `seq` that the customer can see (0: none)."""
    found = conversation.messages.filter(internal=False, seq__lte=seq).aggregate(last=Max("seq"))["last"]
    return found or 0


@dataclass(frozen=True)
class Opening:
    """What a socket opening a conversation is sent, and where its sequence of that conversation goes on from.

    `messages` are those after the `after` asked for, in order (the newest `max_backlog` of them: `truncated`
    says some were left out); `reset` that `after` was past any seq the viewer could have had, so the page starts
    over from 0. `last_seq` is the last seq sent or had: live messages follow it with no gap or duplicate.
    `read` holds the customer's and the staff's read marks, as this viewer may see them; `customer_id` is the order's
    customer (whose presence and typing the staff side hears of).
    """

    order_id: int
    messages: list[Message]
    last_seq: int
    reset: bool
    truncated: bool
    read: dict
    customer_id: int


def conversation_open(*, viewer, order_id: int, after: int, max_backlog: int) -> Opening:
    """What the viewer (the order's customer, or staff; else ChatRefused) is sent on opening the conversation."""
    staff_view = sees_internal_notes(viewer)
    order = order_for_participant(user=viewer, order_id=order_id)
    conversation = Conversation.objects.filter(order_id=order.pk).first()
    visible = 0 if conversation is None else conversation.last_seq if staff_view else conversation.last_public_seq
    reset = after > visible
    if reset:
        after = 0
    if conversation is None:
        no_reads = {"customer": 0, "staff": 0}
        return Opening(order.pk, [], 0, reset, truncated=False, read=no_reads, customer_id=order.customer_id)
    newest_first = list(
        visible_messages(conversation.messages.all(), staff_view=staff_view)
        .filter(seq__gt=after)
        .order_by("-seq")[: max_backlog + 1]
    )
    truncated = len(newest_first) > max_backlog
    messages = newest_first[:max_backlog][::-1]
    # From the rows sent, not from `visible`: a message committed between the two reads is in them, and its
    # live copy is then dropped as one already sent.
    last_seq = messages[-1].seq if messages else after
    read = _read_marks(conversation, order, staff_view)
    return Opening(order.pk, messages, last_seq, reset, truncated, read=read, customer_id=order.customer_id)


def _read_marks(conversation: Conversation, order, staff_view: bool) -> dict:
    """The customer's mark, and the furthest any staff member has read (as of the last message a customer sees)."""
    reads = ConversationRead.objects.filter(conversation=conversation).aggregate(
        customer=Max("last_read_seq", filter=Q(user_id=order.customer_id)),
        staff=Max("last_read_seq", filter=~Q(user_id=order.customer_id)),
    )
    staff_mark = reads["staff"] or 0
    if not staff_view and staff_mark:
        staff_mark = public_seq_at_or_before(conversation=conversation, seq=staff_mark)
    return {"customer": reads["customer"] or 0, "staff": staff_mark}
