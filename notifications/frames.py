"""What clients see: the JSON frames of the WebSocket protocol (docs/protocol.md) that every kind shares.

A kind's payload and its fan-out frames are its own app's (notifications/kinds.py).
"""

from notifications.selectors import UnreadState


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
