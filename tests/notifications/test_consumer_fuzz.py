"""Fuzzing the socket protocol: whatever a client sends, the consumer answers sanely and never crashes."""

import json

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.factories import UserFactory
from tests.notifications.test_consumer import session_key_for, socket

pytestmark = [pytest.mark.django_db(transaction=True)]

KNOWN_REPLIES = {"pong", "error", "unread"}
MAX_BYTES = 4096

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
messages = st.one_of(
    # Well-formed-looking messages with hostile field values.
    st.fixed_dictionaries(
        {"type": st.sampled_from(["ping", "mark_read", "mark_all_read", "subscribe", "hello", ""]) | st.text(max_size=12)},
        optional={"seq": json_values, "group": st.text(max_size=12), "user_id": json_values},
    ).map(lambda message: {"text": json.dumps(message)}),
    # Any JSON at all.
    json_values.map(lambda value: {"text": json.dumps(value)}),
    # Not JSON, including the empty string.
    st.text(max_size=200).map(lambda text: {"text": text}),
    # Binary frames.
    st.binary(max_size=200).map(lambda data: {"bytes": data}),
)


@pytest.fixture
def session_key(db, settings):
    # Fuzz the parser here, not the limiters.
    settings.NOTIFICATION_SOCKET_RATE_LIMIT = settings.NOTIFICATION_USER_RATE_LIMIT = "10000/second"
    return session_key_for(UserFactory())


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.lists(messages, min_size=1, max_size=15))
def test_any_sequence_of_client_messages_gets_valid_replies_and_never_crashes_the_consumer(session_key, sent):
    async def scenario():
        communicator = socket(session_key)
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        for message in sent:
            await communicator.send_input({"type": "websocket.receive", **message})
        await communicator.send_json_to({"type": "ping"})
        while True:  # every reply is a known frame, until the final pong proves the socket still works
            # A deadline, not a pause: generous, so a loaded CI machine is not mistaken for a hang.
            output = await communicator.receive_output(timeout=20)
            assert output["type"] == "websocket.send", output
            frame = json.loads(output["text"])
            assert frame["type"] in KNOWN_REPLIES, frame
            if frame["type"] == "error":
                assert frame["code"] and frame["detail"]
            if frame == {"type": "pong"} and await communicator.receive_nothing(timeout=0.05):
                break
        await communicator.disconnect()

    async_to_sync(scenario)()


@hypothesis_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=MAX_BYTES + 1, max_value=256 * 1024))
def test_any_oversized_message_is_refused_with_4009_not_1011(session_key, size):
    async def scenario():
        communicator = socket(session_key)
        await communicator.connect()
        await communicator.receive_json_from()
        await communicator.send_to(text_data="x" * size)
        assert (await communicator.receive_json_from())["code"] == "too_large"
        output = await communicator.receive_output()
        assert output == {"type": "websocket.close", "code": 4009}
        await communicator.disconnect()  # as the browser would, so the consumer ends cleanly

    async_to_sync(scenario)()
