"""The kinds of notification: each registered by the app that owns it, from its `AppConfig.ready()`.

The notifications service delivers any kind the same way (record, publish after commit, sweep, resume,
mark read); what a kind means, its wording and payload, belong to its app (e.g. `orders/notifications.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifications.models import Notification

# The live frames a notification of some kind also sends beyond its recipient, as (group, frame) pairs.
Fanout = Callable[["Notification"], list[tuple[str, dict]]]

KIND_NAME_MAX_LENGTH = 50  # what `Notification.kind` holds


class Channel(StrEnum):
    """Where a notification can reach its recipient. In-app (the socket and the notification centre) is always on;
    email and push are the fallbacks for a notification no open page acknowledged (notifications/offline.py)."""

    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"


OFFLINE_CHANNELS = (Channel.EMAIL, Channel.PUSH)


@dataclass(frozen=True)
class Topic:
    """What a customer chooses channels for on the preferences page: a kind, or one part of it (an order shipped).

    `key` is stored in `NotificationPreference.topic`; `offline_defaults` are the offline channels that are on
    until the customer says otherwise.
    """

    key: str
    label: str
    offline_defaults: frozenset[Channel] = frozenset()


@dataclass(frozen=True)
class NotificationKind:
    """A kind of notification: its name (stored in `Notification.kind`, sent as a frame's `kind`) and its fan-out.

    `fanout`, if any, builds the frames that go live, with no seq, to other groups (staff, say) when a
    notification of this kind is published; the consumer forwards them as they are. `topics` and `topic_of`
    say what the customer's channel preferences apply to (the preferences page lists every kind's topics).
    `email_template` and `email_context` say how one of its notifications looks in an email (notifications/email.py).
    """

    name: str
    fanout: Fanout | None = None
    # The topics its notifications fall under, and which one a given payload is; none means it never goes offline.
    topics: tuple[Topic, ...] = ()
    topic_of: Callable[[dict], str] | None = None
    # Its part of an email, `<email_template>.html` and `.txt` (the generic title and body if empty), and the
    # context those need beyond `notification`, `payload` and `url` (the absolute link to what it is about).
    email_template: str = ""
    email_context: Callable[["Notification"], dict] | None = None


class UnknownNotificationKind(LookupError):
    """A notification of a kind no app has registered."""


_registered: dict[str, NotificationKind] = {}


def notification_kind_register(kind: NotificationKind) -> NotificationKind:
    """Make `kind` recordable; registering the same kind again is harmless, another under its name is refused."""
    if not 0 < len(kind.name) <= KIND_NAME_MAX_LENGTH:
        raise ValueError(f"A notification kind's name is 1 to {KIND_NAME_MAX_LENGTH} characters: {kind.name!r}")
    registered = _registered.setdefault(kind.name, kind)
    if registered != kind:
        raise ValueError(f"Notification kind {kind.name!r} is already registered as {registered!r}")
    return kind


def notification_kind(name: str) -> NotificationKind:
    """The registered kind called `name`; raises UnknownNotificationKind, naming the kinds there are, if none is."""
    try:
        return _registered[name]
    except KeyError:
        known = ", ".join(sorted(_registered)) or "none"
        raise UnknownNotificationKind(
            f"Unknown notification kind {name!r} (registered: {known}): the app that owns it registers it "
            "with notifications.kinds.notification_kind_register() in its AppConfig.ready()"
        ) from None


def notification_kinds() -> list[NotificationKind]:
    """Every registered kind, by name."""
    return [_registered[name] for name in sorted(_registered)]


def notification_topic(kind_name: str, payload: dict) -> Topic | None:
    """The topic a notification of `kind_name` with `payload` falls under, or None if it never goes offline."""
    kind = notification_kind(kind_name)
    if kind.topic_of is None:
        return None
    key = kind.topic_of(payload)
    return next((topic for topic in kind.topics if topic.key == key), None)
