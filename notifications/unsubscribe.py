"""One-click unsubscribe (RFC 8058): a signed link naming a customer, a channel and the topics it turns off.

Signed with django.core.signing under a salt of its own rather than stored: every email ever sent can be
unsubscribed from without logging in, and a link anyone altered is refused.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction

from notifications.kinds import OFFLINE_CHANNELS, Channel, Topic
from notifications.preferences import notification_preference_turn_off, notification_topics, offline_channels_chosen

SALT = "notifications.unsubscribe"


class UnsubscribeLinkInvalid(ValueError):
    """A link whose signature does not match (altered or made up), or that names nothing that exists."""


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid link turns off: `channel` for `topics` of one user."""

    user_id: int
    topics: tuple[Topic, ...]
    channel: Channel


def unsubscribe_token(*, user_id: int, topics: list[str], channel: Channel) -> str:
    """The signed, URL-safe token of an unsubscribe link."""
    return signing.dumps({"user": user_id, "topics": topics, "channel": channel.value}, salt=SALT, compress=True)


def unsubscribe_read(*, token: str) -> Unsubscribe:
    """What `token` turns off; raises UnsubscribeLinkInvalid for a bad signature or a link naming nothing known."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise UnsubscribeLinkInvalid("This unsubscribe link is not valid: it was cut short or altered.") from None
    known = {topic.key: topic for topic in notification_topics()}
    topics = tuple(known[key] for key in data.get("topics", ()) if key in known)
    channels = {channel.value: channel for channel in OFFLINE_CHANNELS}
    user_id = data.get("user")
    if not topics or data.get("channel") not in channels or not get_user_model().objects.filter(pk=user_id).exists():
        raise UnsubscribeLinkInvalid("This unsubscribe link no longer applies to anything.")
    return Unsubscribe(user_id=user_id, topics=topics, channel=channels[data["channel"]])


def unsubscribe_topics_on(*, unsubscribe: Unsubscribe) -> list[Topic]:
    """The link's topics whose channel is still on (none: already unsubscribed)."""
    chosen = offline_channels_chosen(user_id=unsubscribe.user_id)
    return [topic for topic in unsubscribe.topics if unsubscribe.channel in chosen.get(topic.key, ())]


def notification_unsubscribe(*, unsubscribe: Unsubscribe) -> list[Topic]:
    """Turn the link's channel off for its topics; the topics that were on (none: nothing was written)."""
    with transaction.atomic():
        return [
            topic
            for topic in unsubscribe.topics
            if notification_preference_turn_off(
                user_id=unsubscribe.user_id, topic=topic.key, channel=unsubscribe.channel
            )
        ]
