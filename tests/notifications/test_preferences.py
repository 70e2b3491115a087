"""A customer's channel preferences (notifications/preferences.py): the kinds' defaults, their own choices over
them, and nothing stored for a topic no app registers."""

import pytest

from notifications.kinds import OFFLINE_CHANNELS, Channel, notification_kinds
from notifications.models import NotificationPreference
from notifications.preferences import (
    notification_preference_turn_off,
    notification_preferences_save,
    notification_topics,
    offline_channels_chosen,
    offline_channels_for,
)
from orders.notifications import ORDER_STATUS_TOPICS

pytestmark = pytest.mark.django_db

BOTH = {Channel.EMAIL, Channel.PUSH}


def topic(key):
    return next(topic for topic in notification_topics() if topic.key == key)


def test_the_topics_are_every_kinds_topics_in_each_kinds_order():
    assert notification_topics() == [topic for kind in notification_kinds() for topic in kind.topics]
    assert [t.key for t in notification_topics() if t in ORDER_STATUS_TOPICS] == [t.key for t in ORDER_STATUS_TOPICS]


def test_with_no_choice_made_every_topic_follows_its_default(customer):
    chosen = offline_channels_chosen(user_id=customer.pk)

    assert chosen == {t.key: set(t.offline_defaults) for t in notification_topics()}
    assert chosen["order.shipped"] == BOTH
    assert chosen["order.paid"] == set()
    for t in notification_topics():
        assert offline_channels_for(user_id=customer.pk, topic=t) == set(t.offline_defaults)


def test_a_saved_choice_overrides_the_default_both_ways_and_only_for_that_customer(customer, other_customer):
    notification_preferences_save(
        user_id=customer.pk, chosen={"order.shipped": {Channel.PUSH}, "order.paid": {Channel.EMAIL}}
    )

    chosen = offline_channels_chosen(user_id=customer.pk)
    assert chosen["order.shipped"] == {Channel.PUSH}  # email turned off
    assert chosen["order.paid"] == {Channel.EMAIL}  # email turned on
    assert chosen["order.delivered"] == BOTH  # not given: still the default
    assert offline_channels_for(user_id=customer.pk, topic=topic("order.shipped")) == {Channel.PUSH}
    assert offline_channels_chosen(user_id=other_customer.pk)["order.shipped"] == BOTH


def test_saving_again_updates_the_rows_and_writes_one_per_topic_and_channel(customer):
    notification_preferences_save(user_id=customer.pk, chosen={"order.shipped": set()})
    notification_preferences_save(user_id=customer.pk, chosen={"order.shipped": BOTH})

    rows = NotificationPreference.objects.filter(user=customer)
    assert sorted(rows.values_list("topic", "channel", "enabled")) == [
        ("order.shipped", channel.value, True) for channel in sorted(OFFLINE_CHANNELS)
    ]


def test_saving_an_unknown_topic_is_refused_and_writes_nothing(customer):
    with pytest.raises(ValueError, match="order.teleported"):
        notification_preferences_save(
            user_id=customer.pk, chosen={"order.shipped": set(), "order.teleported": {Channel.EMAIL}}
        )

    assert not NotificationPreference.objects.filter(user=customer).exists()


def test_a_stored_choice_for_a_topic_no_app_registers_any_more_is_ignored(customer):
    NotificationPreference.objects.create(user=customer, topic="order.retired", channel=Channel.EMAIL, enabled=True)

    assert "order.retired" not in offline_channels_chosen(user_id=customer.pk)


def test_turning_off_a_channel_that_was_on_by_default_says_so_and_keeps_the_other(customer):
    assert notification_preference_turn_off(user_id=customer.pk, topic="order.shipped", channel=Channel.EMAIL)

    assert offline_channels_chosen(user_id=customer.pk)["order.shipped"] == {Channel.PUSH}


def test_turning_off_a_channel_already_off_says_it_was_off_and_stays_off(customer):
    assert not notification_preference_turn_off(user_id=customer.pk, topic="order.paid", channel=Channel.EMAIL)
    notification_preferences_save(user_id=customer.pk, chosen={"order.shipped": {Channel.PUSH}})
    assert not notification_preference_turn_off(user_id=customer.pk, topic="order.shipped", channel=Channel.EMAIL)

    assert offline_channels_chosen(user_id=customer.pk)["order.paid"] == set()
    assert offline_channels_chosen(user_id=customer.pk)["order.shipped"] == {Channel.PUSH}


def test_turning_off_an_unknown_topic_is_refused_and_writes_nothing(customer):
    with pytest.raises(ValueError, match="order.teleported"):
        notification_preference_turn_off(user_id=customer.pk, topic="order.teleported", channel=Channel.EMAIL)

    assert not NotificationPreference.objects.filter(user=customer).exists()
