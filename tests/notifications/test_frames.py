"""The frames every kind shares: what a payload may not hold, and what a kind's fan-out may not send."""

import pytest
from django.utils import timezone

from notifications.frames import (
    NOTIFICATION_FRAME_KEYS,
    PROTOCOL_FRAME_TYPES,
    fanout_frame_check,
    hello_frame,
    notification_frame,
    unread_frame,
)
from notifications.models import Notification
from notifications.selectors import UnreadState


def test_the_keys_a_payload_may_not_hold_are_exactly_those_the_notification_frame_sets_around_it():
    notification = Notification(seq=1, kind="tests.support_reply", created_at=timezone.now(), payload={})

    frame = notification_frame(notification, unread=UnreadState(count=0, version=0))

    assert frame.keys() == NOTIFICATION_FRAME_KEYS


def test_the_protocols_frame_types_include_every_one_the_server_builds():
    unread = UnreadState(count=0, version=0)
    built = [hello_frame(user_id=1, last_seq=0, unread=unread), unread_frame(unread=unread, read_seqs=None)]

    assert {frame["type"] for frame in built} | {"notification", "reset", "error"} <= PROTOCOL_FRAME_TYPES


@pytest.mark.parametrize("frame_type", sorted(PROTOCOL_FRAME_TYPES))
def test_a_fan_out_frame_of_a_type_the_protocol_reserves_is_refused(frame_type):
    with pytest.raises(ValueError, match=f"type '{frame_type}'"):
        fanout_frame_check({"type": frame_type})


@pytest.mark.parametrize("frame_type", ["chat.message", "chat.sent", "tests.anything"])
def test_a_fan_out_frame_of_an_apps_namespaced_socket_type_is_refused(frame_type):
    """A kind's fan-out could otherwise pass for an app's own frame, such as a chat message."""
    with pytest.raises(ValueError, match="'<app>.<name>' types are apps' own"):
        fanout_frame_check({"type": frame_type})


def test_a_fan_out_frame_of_a_kinds_own_type_passes_as_it_is():
    frame = {"type": "order_changed", "order": {"id": 1}}

    assert fanout_frame_check(frame) is frame
