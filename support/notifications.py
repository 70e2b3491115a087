"""The support app's notification kind: staff replied in an order's conversation and the customer has not read it.

Registered with the notifications service from `SupportConfig.ready()`. A staff reply marks its conversation
(`Conversation.reply_unnotified_seq`, in the post's transaction); `reply_notifications_run` (beat's
`notify_support_replies`, or the web process's in embedded mode) finds the conversations whose replies are due by
the rule in support/rules.py and records one notification for each: the newest reply, saying how many. Email and
push then follow the notifications' offline fallback, by the customer's preferences for "chat.message".
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.text import Truncator

from notifications.kinds import Channel, NotificationKind, Topic
from notifications.models import Notification
from notifications.services import notification_record
from support.frames import author_name
from support.models import Conversation, ConversationRead, Message
from support.rules import reply_notice_due, unread_replies

logger = logging.getLogger(__name__)

# Characters of the newest reply a notification quotes (the conversation on the order page has it all).
EXCERPT_LENGTH = 200
# Conversations one run looks at, at most: the next run takes the rest.
CONVERSATIONS_PER_RUN = 500

CHAT_MESSAGE_TOPIC = Topic(
    key="chat.message",
    label="Support replies to you",
    offline_defaults=frozenset({Channel.EMAIL, Channel.PUSH}),
)

CHAT_MESSAGE = NotificationKind(
    name="chat.message",
    topics=(CHAT_MESSAGE_TOPIC,),
    topic_of=lambda payload: CHAT_MESSAGE_TOPIC.key,
    email_template="support/email/chat_message",
)


def chat_reply_payload(*, order, replies: list[Message]) -> dict:
    """The stored payload of a `chat.message` notification, all the customer is ever sent of it: the newest reply's
    author (first name) and an excerpt, how many replies it stands for, and the order page.

    Built from staff's replies only, so an internal note's text cannot reach the customer by any channel.
    """
    if not replies or any(reply.internal or not reply.from_staff for reply in replies):
        raise ValueError("A reply notification is made of staff's replies to the customer, never a note")
    newest = replies[-1]
    name = author_name(newest.author, from_staff=True)
    count = len(replies)
    title = f"{name} replied" if count == 1 else f"{count} new replies"
    return {
        "order": {"id": order.pk, "number": order.number},
        "title": f"{title} about order {order.number}",
        "body": Truncator(newest.body).chars(EXCERPT_LENGTH),
        "author": {"name": name},
        "count": count,
        "message_seq": newest.seq,
        "url": order.get_absolute_url(),
    }


def reply_notifications_run(*, now=None) -> int:
    """Notify every customer whose conversation has staff replies due; how many notifications it recorded.

    Runs may overlap (a redelivered task, the next beat's): each conversation is claimed by one of them.
    """
    now = now or timezone.now()
    # Only conversations whose oldest unnotified reply has waited long enough: the rest are not looked at yet.
    due = Message.objects.filter(
        conversation=OuterRef("pk"),
        seq=OuterRef("reply_unnotified_seq"),
        created_at__lte=now - timedelta(seconds=settings.CHAT_NOTIFY_DELAY),
    )
    pending = (
        Conversation.objects.filter(Exists(due), reply_unnotified_seq__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)[:CONVERSATIONS_PER_RUN]
    )
    notified = 0
    for conversation_id in list(pending):
        try:
            notified += conversation_replies_notify(conversation_id=conversation_id, now=now) is not None
        except DatabaseError:
            raise  # PostgreSQL is away: the next run tries them all again
        except Exception:  # one conversation's bug (its rows rolled back, it stays due) must not stall the others
            logger.exception("No reply notification for conversation %s; the next run tries again", conversation_id)
    return notified


def conversation_replies_notify(*, conversation_id: int, now) -> Notification | None:
    """The notification for one conversation's due replies, recorded with the claim cleared in one transaction.

    The conversation row is the claim (SELECT … FOR UPDATE SKIP LOCKED): a run that finds it taken (by another run,
    or a post in progress) leaves it to the next. Replies already read clear it; replies not due yet keep it, from
    the oldest unread one.
    """
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=conversation_id, reply_unnotified_seq__isnull=False)
            .select_related("order")
            .first()
        )
        if conversation is None:
            return None
        order = conversation.order
        read_seq = (
            ConversationRead.objects.filter(conversation=conversation, user_id=order.customer_id)
            .values_list("last_read_seq", flat=True)
            .first()
        ) or 0
        messages = conversation.messages.filter(seq__gte=conversation.reply_unnotified_seq).select_related("author")
        replies = unread_replies(messages=messages.order_by("seq"), customer_read_seq=read_seq)
        notification = None
        if reply_notice_due(replies=replies, now=now):
            notification = notification_record(
                recipient_id=order.customer_id,
                kind=CHAT_MESSAGE.name,
                payload=chat_reply_payload(order=order, replies=replies),
                actor=replies[-1].author,
            )
            conversation.reply_unnotified_seq = None
        else:
            conversation.reply_unnotified_seq = replies[0].seq if replies else None
        conversation.save(update_fields=["reply_unnotified_seq"])
    return notification
