"""Posting to a conversation and moving a read mark: stored in one transaction, sent to the participants after it.

The rows are the record. The live messages go out on commit to the order's customer's group and to the staff
watching the conversation (an internal note to the staff only); a socket that misses one fills the gap from the
database, and a page that was away asks for what came after the last seq it has (`chat.open`). The staff inbox
hears which order's conversation changed, and nothing more.
"""

import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from notifications.groups import user_group
from notifications.services import group_send_on_commit
from support.frames import author_name, chat_inbox_changed_frame, chat_read_frame, message_payload
from support.groups import INBOX_GROUP, conversation_staff_group
from support.models import Conversation, ConversationRead, Message
from support.rules import ChatRefused, message_body_clean, order_for_participant, sees_internal_notes
from support.selectors import public_seq_at_or_before


@dataclass(frozen=True)
class Posted:
    """What a post stored, or found already stored (`created` False: a retry with the same client_id)."""

    message: Message
    created: bool


def message_post(*, author, order_id: int, body: object, client_id: uuid.UUID, internal: bool = False) -> Posted:
    """Store a message from `author` on the order's conversation (created by its first message), then publish it.

    A retry (a client_id the author already used, with the same body) stores nothing and publishes the stored
    message again. Refused with ChatRefused, nothing stored or sent: a body outside the rules, an order the author
    may not take part in, an internal note from a customer, or a client_id the author used for another message.
    """
    body = message_body_clean(body)
    from_staff = sees_internal_notes(author)
    if internal and not from_staff:
        raise ChatRefused("not_allowed", "Only staff write internal notes.")
    with transaction.atomic():
        order = order_for_participant(user=author, order_id=order_id)
        conversation = _conversation_lock(order_id=order.pk)
        stored = conversation.messages.filter(author_id=author.pk, client_id=client_id).first()
        if stored is not None:
            if (stored.body, stored.internal) != (body, internal):
                raise ChatRefused("client_id_reused", "This client_id was already used for another message.")
            stored.author = author
            # Published again: if the first publish was lost with its process, the retry delivers it (sockets
            # drop a seq they already have).
            group_send_on_commit([*message_deliveries(stored, order=order), inbox_change(order_id=order.pk)])
            return Posted(message=stored, created=False)
        conversation.last_seq += 1
        message = Message(
            conversation=conversation,
            seq=conversation.last_seq,
            public_previous_seq=conversation.last_public_seq,
            author=author,
            from_staff=from_staff,
            body=body,
            internal=internal,
            client_id=client_id,
        )
        if not internal:
            conversation.last_public_seq = conversation.last_seq
            if from_staff and conversation.reply_unnotified_seq is None:
                # The timer of the reply notification (support/notifications.py): a row, so no restart loses it.
                conversation.reply_unnotified_seq = conversation.last_seq
        conversation.save(update_fields=["last_seq", "last_public_seq", "reply_unnotified_seq"])
        message.save(force_insert=True)
        group_send_on_commit([*message_deliveries(message, order=order), inbox_change(order_id=order.pk)])
    return Posted(message=message, created=True)


def _conversation_lock(*, order_id: int) -> Conversation:
    """The order's conversation, locked until commit: posts to it queue here, and each takes the next seq."""
    conversation = Conversation.objects.select_for_update().filter(order_id=order_id).first()
    if conversation is None:
        # The first message. Two at once both insert; the second's waits for the first's and does nothing.
        Conversation.objects.bulk_create([Conversation(order_id=order_id)], ignore_conflicts=True)
        conversation = Conversation.objects.select_for_update().get(order_id=order_id)
    return conversation


def message_deliveries(message: Message, *, order) -> list[tuple[str, dict]]:
    """The (group, layer message) pairs that carry a new message: the staff watching it always, the customer unless
    it is a note."""
    event = {
        "type": "chat.message",
        "order": order.pk,
        "message": message_payload(message),
        "public_previous_seq": message.public_previous_seq,
        # Which send it answers: the sending socket waits for its chat.sent instead (never sent to a client).
        "author_id": message.author_id,
        "client_id": str(message.client_id),
    }
    staff = conversation_staff_group(order.pk)
    if message.internal:
        return [(staff, event)]
    return [(user_group(order.customer_id), event), (staff, event)]


def inbox_change(*, order_id: int) -> tuple[str, dict]:
    """The (group, layer message) that tells the staff inbox a conversation changed: staff sockets only, and only
    the order's id (a note's words never travel this way)."""
    return INBOX_GROUP, chat_inbox_changed_frame(order_id=order_id)


def conversation_read(*, reader, order_id: int, seq: int) -> int | None:
    """Move the reader's mark on to `seq` and tell both sides; the new mark, or None if it was already there.

    Refused with ChatRefused: an order the reader may not take part in, or a seq past the last they can see.
    """
    staff_view = sees_internal_notes(reader)
    with transaction.atomic():
        order = order_for_participant(user=reader, order_id=order_id)
        conversation = Conversation.objects.filter(order_id=order.pk).first()
        visible = 0 if conversation is None else conversation.last_seq if staff_view else conversation.last_public_seq
        if seq > visible:
            raise ChatRefused("invalid_seq", f"Mark read at most seq {visible}, the last message you can see.")
        if not _read_mark_move(conversation_id=conversation.pk, user_id=reader.pk, seq=seq):
            return None
        name = author_name(reader, from_staff=staff_view)
        frame = chat_read_frame(order_id=order.pk, seq=seq, reader_name=name, reader_is_staff=staff_view)
        staff_message = {"type": "chat.read", "order": order.pk, "frame": frame, "staff_only": True}
        sends = [(conversation_staff_group(order.pk), staff_message)]
        # The customer hears of a staff member's mark as of the last message they can see, never a note's seq.
        customer_seq = public_seq_at_or_before(conversation=conversation, seq=seq) if staff_view else seq
        if customer_seq:
            customer_frame = {**frame, "seq": customer_seq}
            message = {"type": "chat.read", "order": order.pk, "frame": customer_frame, "staff_only": False}
            sends.append((user_group(order.customer_id), message))
        if staff_view:
            sends.append(inbox_change(order_id=order.pk))  # the inbox counts what staff have not read
        group_send_on_commit(sends)
    return seq


def _read_mark_move(*, conversation_id: int, user_id: int, seq: int) -> bool:
    """Move the participant's mark up to `seq` in one statement; False if it was there or beyond already."""
    table = ConversationRead._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (conversation_id, user_id, last_read_seq, updated_at) "  # the table name is ours
            f"VALUES (%s, %s, %s, %s) ON CONFLICT (conversation_id, user_id) DO UPDATE "
            f"SET last_read_seq = EXCLUDED.last_read_seq, updated_at = EXCLUDED.updated_at "
            f"WHERE {table}.last_read_seq < EXCLUDED.last_read_seq RETURNING 1",
            [conversation_id, user_id, seq, timezone.now()],
        )
        return cursor.fetchone() is not None
