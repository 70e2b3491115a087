"""The chat frames of the socket protocol (docs/protocol.md, "Support conversations")."""

from support.models import Message

# How a staff author is named to the customer when they gave no first name.
STAFF_DEFAULT_NAME = "Support"


def author_name(user, *, from_staff: bool) -> str:
    """What the other side calls an author: a staff member's first name only, a customer's full name."""
    if from_staff:
        return user.first_name or STAFF_DEFAULT_NAME
    return user.get_full_name() or user.get_username()


def message_payload(message: Message) -> dict:
    """A message as every frame carries it: the same for both sides (a customer is never sent an internal one)."""
    return {
        "seq": message.seq,
        "body": message.body,
        "author": {"name": author_name(message.author, from_staff=message.from_staff), "is_staff": message.from_staff},
        "created_at": message.created_at.isoformat(timespec="microseconds"),
        "internal": message.internal,
    }


def previous_seq(*, seq: int, public_previous_seq: int, staff_view: bool) -> int:
    """The seq of the message before this one that the viewer can see: staff see every one, a customer no note."""
    return seq - 1 if staff_view else public_previous_seq


def chat_message_frame(*, order_id: int, message: dict, previous_seq: int) -> dict:
    """A message, from the backlog or live; `previous_seq` lets the page tell it missed one."""
    return {"type": "chat.message", "order": order_id, "previous_seq": previous_seq, "message": message}


def chat_sent_frame(*, order_id: int, client_id: str, message: dict) -> dict:
    """The answer to a `chat.send`: the stored message (also for a retry of one already stored)."""
    return {"type": "chat.sent", "order": order_id, "client_id": client_id, "message": message}


def chat_opened_frame(
    *, order_id: int, last_seq: int, reset: bool, truncated: bool, read: dict, presence: dict
) -> dict:
    return {
        "type": "chat.opened",
        "order": order_id,
        "last_seq": last_seq,
        "reset": reset,
        "truncated": truncated,
        "read": read,
        "presence": presence,
    }


def chat_presence_frame(*, order_id: int, customer_online: bool, staff_viewing: bool) -> dict:
    """Who is there now, sent to a watcher when it changed since the last it was sent."""
    return {
        "type": "chat.presence",
        "order": order_id,
        "customer_online": customer_online,
        "staff_viewing": staff_viewing,
    }


def chat_typing_frame(*, order_id: int, author_name: str, author_is_staff: bool, expires_in: int) -> dict:
    """The other side is typing: shown for `expires_in` seconds unless another comes, or their message."""
    return {
        "type": "chat.typing",
        "order": order_id,
        "author": {"name": author_name, "is_staff": author_is_staff},
        "expires_in": expires_in,
    }


def chat_read_frame(*, order_id: int, seq: int, reader_name: str, reader_is_staff: bool) -> dict:
    """A participant's read mark moved on to `seq` (a read receipt)."""
    return {
        "type": "chat.read",
        "order": order_id,
        "seq": seq,
        "reader": {"name": reader_name, "is_staff": reader_is_staff},
    }


def chat_inbox_opened_frame() -> dict:
    """The answer to `chat.inbox`: the socket now hears of every change, so the page fetches its rows afresh."""
    return {"type": "chat.inbox_opened"}


def chat_inbox_changed_frame(*, order_id: int) -> dict:
    """A conversation changed (a message, a note, a staff read mark): only which one, the rows come over HTTP."""
    return {"type": "chat.inbox_changed", "order": order_id}
