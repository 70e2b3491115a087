"""Reads of conversations: what a page opening one is sent, the messages a socket missed, and the staff inbox."""

import re
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, Count, F, FilteredRelation, Max, OuterRef, Prefetch, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from support.frames import author_name
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
        staff=Max("last_read_seq", filter=_staff_reader(order.customer_id)),
    )
    staff_mark = reads["staff"] or 0
    if not staff_view and staff_mark:
        staff_mark = public_seq_at_or_before(conversation=conversation, seq=staff_mark)
    return {"customer": reads["customer"] or 0, "staff": staff_mark}


def _staff_reader(customer_id) -> Q:
    """The read marks that are staff's: every participant's but the order's customer's (only staff read others')."""
    return ~Q(user_id=customer_id)


# --- The staff inbox ---------------------------------------------------------------------------

# How much of the last message a row shows, in characters.
INBOX_EXCERPT_LENGTH = 120
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class InboxRow:
    """One conversation as the inbox lists it.

    The last message is the last one its customer can see (a note is no answer); `awaiting_reply` that it is the
    customer's, and `waiting_since` when the customer's unanswered messages began. `unread` counts the customer's
    messages after the furthest any staff member has read (staff's own replies and notes are never unread to staff).
    """

    order_id: int
    order_number: str
    customer_name: str
    last_message: Message | None
    awaiting_reply: bool
    waiting_since: datetime | None
    unread: int

    @property
    def excerpt(self) -> str:
        """The last message's start, on one line."""
        return "" if self.last_message is None else message_excerpt(self.last_message.body)

    @property
    def last_author_name(self) -> str:
        if self.last_message is None:
            return ""
        return author_name(self.last_message.author, from_staff=self.last_message.from_staff)


@dataclass(frozen=True)
class Inbox:
    """The first `max_rows` conversations of the queue, and how many there are in all (`total`)."""

    rows: list[InboxRow]
    total: int


def message_excerpt(body: str) -> str:
    """A body on one line, cut to INBOX_EXCERPT_LENGTH characters ("…" says it was)."""
    text = _WHITESPACE.sub(" ", body).strip()
    return text if len(text) <= INBOX_EXCERPT_LENGTH else text[: INBOX_EXCERPT_LENGTH - 1].rstrip() + "…"


def inbox(*, awaiting_only: bool, max_rows: int) -> Inbox:
    """The support queue: awaiting a reply first, the longest waiting first, then the most recently answered.

    Three queries whatever the number of rows: the count, the rows, and their last messages with their authors.
    """
    conversations = _inbox_conversations()
    if awaiting_only:
        conversations = conversations.filter(awaiting_reply=True)
    total = conversations.count()
    last_messages = Message.objects.filter(internal=False, seq=F("conversation__last_public_seq"))
    page = conversations.select_related("order__customer").prefetch_related(
        Prefetch("messages", queryset=last_messages.select_related("author"), to_attr="last_public_messages")
    )[:max_rows]
    return Inbox(rows=[_inbox_row(conversation) for conversation in page], total=total)


def _inbox_conversations():
    """Every conversation, annotated with what the inbox sorts and filters on, in the queue's order."""
    messages = Message.objects.filter(conversation=OuterRef("pk"), internal=False)
    staff_mark = Subquery(
        ConversationRead.objects.filter(conversation=OuterRef("pk"))
        .filter(_staff_reader(OuterRef("order__customer_id")))
        .order_by("-last_read_seq")
        .values("last_read_seq")[:1]
    )
    last_staff_reply = Subquery(
        Message.objects.filter(conversation=OuterRef(OuterRef("pk")), internal=False, from_staff=True)
        .order_by("-seq")
        .values("seq")[:1]
    )
    first_unanswered = messages.filter(from_staff=False, seq__gt=Coalesce(last_staff_reply, Value(0)))
    return (
        Conversation.objects.annotate(
            last_public=FilteredRelation("messages", condition=Q(messages__seq=F("last_public_seq"))),
        )
        .annotate(
            awaiting_reply=Case(When(last_public__from_staff=False, then=Value(True)), default=Value(False)),
            last_message_at=F("last_public__created_at"),
            waiting_since=Subquery(first_unanswered.order_by("seq").values("created_at")[:1]),
            staff_mark=Coalesce(staff_mark, Value(0)),
        )
        .annotate(unread=Coalesce(Subquery(_customer_messages_after_staff_mark()), Value(0)))
        .order_by(
            F("awaiting_reply").desc(),
            F("waiting_since").asc(nulls_last=True),
            F("last_message_at").desc(nulls_last=True),
            "-pk",
        )
    )


def _customer_messages_after_staff_mark():
    """How many of the conversation's customer messages come after its `staff_mark` (a subquery of one count)."""
    after_mark = Message.objects.filter(conversation=OuterRef("pk"), from_staff=False, seq__gt=OuterRef("staff_mark"))
    return after_mark.values("conversation").annotate(count=Count("pk")).values("count")


def _inbox_row(conversation: Conversation) -> InboxRow:
    order = conversation.order
    last = conversation.last_public_messages
    return InboxRow(
        order_id=order.pk,
        order_number=order.number,
        customer_name=author_name(order.customer, from_staff=False),
        last_message=last[0] if last else None,
        awaiting_reply=conversation.awaiting_reply,
        waiting_since=conversation.waiting_since,
        unread=conversation.unread,
    )


@dataclass(frozen=True)
class PageMessage:
    """A message as a page renders it before its socket opens (the same fields as its frame)."""

    seq: int
    body: str
    author_name: str
    from_staff: bool
    internal: bool
    created_at: datetime


@dataclass(frozen=True)
class ConversationPage:
    """An order's conversation as its page first shows it: the newest messages the viewer may see, in order.

    `last_seq` is the last of them (0: none), the `after` of the page's `chat.open`; `truncated` says older ones
    were left out.
    """

    messages: list[PageMessage]
    last_seq: int
    truncated: bool


def conversation_page(*, order_id: int, staff_view: bool, limit: int) -> ConversationPage:
    """The newest `limit` messages of the order's conversation that the viewer may see: one query."""
    messages = visible_messages(Message.objects.filter(conversation__order_id=order_id), staff_view=staff_view)
    newest_first = list(messages.order_by("-seq")[: limit + 1])
    shown = [
        PageMessage(
            seq=message.seq,
            body=message.body,
            author_name=author_name(message.author, from_staff=message.from_staff),
            from_staff=message.from_staff,
            internal=message.internal,
            created_at=message.created_at,
        )
        for message in newest_first[:limit][::-1]
    ]
    return ConversationPage(shown, last_seq=shown[-1].seq if shown else 0, truncated=len(newest_first) > limit)
