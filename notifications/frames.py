"""What clients see: the JSON frames of the WebSocket protocol (docs/protocol.md) that every kind shares.

A kind's payload and its fan-out frames are its own app's (notifications/kinds.py).
"""

import re

from notifications.selectors import UnreadState

# What notification_frame sets around a payload: a payload key of the same name would overwrite or be overwritten.
NOTIFICATION_FRAME_KEYS = frozenset({"type", "seq", "kind", "created_at", "unread", "unread_version"})
# The frame types the protocol and the client's connection own (docs/protocol.md; static/js/connection.js adds
# `pong` and `state`): a kind's fan-out frame of one of these types would be taken for the protocol's own.
PROTOCOL_FRAME_TYPES = frozenset({"hello", "notification", "unread", "reset", "error", "pong", "state"})
# A path on this site: one "/" then anything but a second "/" or a "\" (browsers read "//host" and "/\host" as
# another host), and no control characters (browsers drop tabs and newlines, so "/\t/host" is "//host").
SAME_SITE_PATH = re.compile(r"/(?![/\\])[^\x00-\x1f\x7f]*")


def same_site_path(url: object, *, default: str) -> str:
    """`url` if it is a path on this site, else `default`: for rows written before the payload check, and links."""
    return url if isinstance(url, str) and SAME_SITE_PATH.fullmatch(url) else default


def notification_payload_check(payload) -> None:
    """Refuse, with a ValueError, a payload no `notification` frame can carry as it is."""
    if not isinstance(payload, dict):
        raise ValueError(f"A notification's payload is a dict, not {type(payload).__name__}")
    reserved = sorted(NOTIFICATION_FRAME_KEYS & payload.keys())
    if reserved:
        raise ValueError(f"A notification's payload cannot hold {', '.join(reserved)}: the frame sets those keys")
    if "url" in payload and same_site_path(payload["url"], default=None) is None:
        raise ValueError(f"A notification's url is a path on this site (such as /orders/), not {payload['url']!r}")


def fanout_frame_check(frame: dict) -> dict:
    """Refuse, with a ValueError, a kind's fan-out frame that would pass for one of the protocol's own or an app's.

    An app's socket frames are namespaced, "<app>.<name>" (notifications/socket_handlers.py: `chat.message`); a
    kind's fan-out frames are not (`order_changed`).
    """
    frame_type = frame.get("type")
    if frame_type in PROTOCOL_FRAME_TYPES:
        raise ValueError(f"A fan-out frame cannot be of type {frame_type!r}: the protocol reserves it")
    if isinstance(frame_type, str) and "." in frame_type:
        raise ValueError(f"A fan-out frame cannot be of type {frame_type!r}: '<app>.<name>' types are apps' own")
    return frame


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


def hello_frame(*, user_id: int, last_seq: int, unread: UnreadState, ticket: str | None = None) -> dict:
    frame = {
        "type": "hello",
        "user_id": user_id,
        "last_seq": last_seq,
        "unread": unread.count,
        "unread_version": unread.version,
    }
    if ticket is not None:
        frame["ticket"] = ticket  # for the next connect (docs/protocol.md, "Connecting")
    return frame


def unread_frame(*, unread: UnreadState, read_seqs: list[int] | None) -> dict:
    """The new unread count after a mark-read; `read_seqs` are the seqs marked, or None for all."""
    return {"type": "unread", "unread": unread.count, "unread_version": unread.version, "read_seqs": read_seqs}


def error_frame(code: str, detail: str, **context) -> dict:
    """An `error` frame; `context` names what it answers (a chat message's `order` and `client_id`, say)."""
    return {"type": "error", "code": code, "detail": detail, **context}
