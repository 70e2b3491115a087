from django import forms

from notifications.kinds import Channel, Topic

CHANNEL_LABELS = {Channel.EMAIL: "Email", Channel.PUSH: "Browser"}


class MarkReadForm(forms.Form):
    """Which notification to mark read; empty means all of them."""

    seq = forms.IntegerField(min_value=1, required=False)


class NotificationPreferencesForm(forms.Form):
    """The preferences page: for each offline channel the customer may change, the topics it is on for.

    One multiple-choice field per channel (`email=order.shipped&email=...`), so a topic no app registers is a
    form error, never stored. A channel not on the form (push before any browser subscribed) keeps its choices.
    """

    def __init__(self, *args, topics: list[Topic], channels: list[Channel], **kwargs):
        super().__init__(*args, **kwargs)
        self.topics = topics
        for channel in channels:
            self.fields[channel.value] = forms.MultipleChoiceField(
                choices=[(topic.key, topic.label) for topic in topics], required=False
            )

    def chosen(self, *, current: dict[str, set[Channel]]) -> dict[str, set[Channel]]:
        """Every topic's offline channels once this form is applied to the `current` choices."""
        return {
            topic.key: {channel for channel in current[topic.key] if channel.value not in self.fields}
            | {Channel(name) for name in self.fields if topic.key in self.cleaned_data[name]}
            for topic in self.topics
        }

    def rows(self, *, current: dict[str, set[Channel]], shown: list[Channel]) -> list[dict]:
        """The table: each topic with, per shown channel, whether its box is ticked and whether it can be changed.

        Ticked as submitted when the form comes back with an error, else as stored.
        """
        return [
            {
                "topic": topic,
                "cells": [
                    {
                        "channel": channel,
                        "label": CHANNEL_LABELS[channel],
                        "editable": channel.value in self.fields,
                        "ticked": topic.key in self.data.getlist(channel.value)
                        if self.is_bound and channel.value in self.fields
                        else channel in current[topic.key],
                    }
                    for channel in shown
                ],
            }
            for topic in self.topics
        ]
