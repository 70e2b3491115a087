"""A customer's channel preferences: per topic (notifications/kinds.py) and offline channel, over the defaults."""

from django.db import transaction

from notifications.kinds import OFFLINE_CHANNELS, Channel, Topic, notification_kinds
from notifications.models import NotificationPreference


def notification_topics() -> list[Topic]:
    """Every topic a customer can choose channels for, kind by kind, in each kind's order."""
    return [topic for kind in notification_kinds() for topic in kind.topics]


def offline_channels_chosen(*, user_id: int) -> dict[str, set[Channel]]:
    """For every topic, the offline channels that are on for this user: their choices over the defaults."""
    chosen = {topic.key: set(topic.offline_defaults) for topic in notification_topics()}
    for topic, channel, enabled in NotificationPreference.objects.filter(user_id=user_id).values_list(
        "topic", "channel", "enabled"
    ):
        if topic in chosen:  # a topic no app registers any more is ignored
            (chosen[topic].add if enabled else chosen[topic].discard)(Channel(channel))
    return chosen


def offline_channels_for(*, user_id: int, topic: Topic) -> set[Channel]:
    """The offline channels that are on for one topic of one user."""
    chosen = set(topic.offline_defaults)
    for channel, enabled in NotificationPreference.objects.filter(user_id=user_id, topic=topic.key).values_list(
        "channel", "enabled"
    ):
        (chosen.add if enabled else chosen.discard)(Channel(channel))
    return chosen


def notification_preferences_save(*, user_id: int, chosen: dict[str, set[Channel]]) -> None:
    """Store a user's choice for every topic given (topic key -> the offline channels on); others stay as they are.

    Unknown topics are refused with ValueError before anything is written.
    """
    known = {topic.key for topic in notification_topics()}
    unknown = set(chosen) - known
    if unknown:
        raise ValueError(f"Unknown notification topics: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        for topic, channels in chosen.items():
            for channel in OFFLINE_CHANNELS:
                NotificationPreference.objects.update_or_create(
                    user_id=user_id, topic=topic, channel=channel, defaults={"enabled": channel in channels}
                )


def notification_preference_turn_off(*, user_id: int, topic: str, channel: Channel) -> bool:
    """Turn one topic's channel off (the one-click unsubscribe); True if it was on (else nothing is written)."""
    topics = {topic.key: topic for topic in notification_topics()}
    if topic not in topics:
        raise ValueError(f"Unknown notification topic: {topic}")
    was_on = channel in offline_channels_for(user_id=user_id, topic=topics[topic])
    if was_on:
        NotificationPreference.objects.update_or_create(
            user_id=user_id, topic=topic, channel=channel, defaults={"enabled": False}
        )
    return was_on
