"""Fuzzing the socket protocol: whatever a client sends, the consumer answers sanely and never crashes."""

import asyncio
import json
import logging
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications import consumers
from notifications.groups import user_group
from tests.factories import UserFactory
from tests.notifications.conftest import group_members
from tests.notifications.test_consumer import closed_with, make_user, open_socket, session_key_for, socket

pytestmark = [pytest.mark.django_db(transaction=True)]

KNOWN_REPLIES = {"pong", "error", "unread", "reset"}
MAX_BYTES = settings.NOTIFICATION_SOCKET_MAX_MESSAGE_BYTES

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Numbers a client can send that are not a seq: huge, negative, at and past 64 bits, not numbers at all.
number_garbage = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, 0, -1, True, False, None, 1.0, 1e400, "1"]),
    json_values,
)
# Digits that are not ASCII ("²", "٣", "①", "𝟗"), text, and numbers written as text.
after_garbage = st.one_of(
    st.text(alphabet=st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(str),
    st.sampled_from(["²", "1²", "٣", "①", "𝟗", "0x10", "+1", " 1", "1_000", "1e3", "9" * 4400]),
    st.text(max_size=30),
)
# Nested within the message cap: from about 1,000 levels json.loads raises RecursionError.
deep_json = st.integers(min_value=1, max_value=2000).flatmap(
    lambda depth: st.sampled_from(
        [
            "[" * depth + "]" * depth,
            "[" * 2 * depth,
            '{"type": "mark_read", "seq": ' + "[" * depth + "]" * depth + "}",
            '{"type": "ping", "x": ' + "[{}," * (depth // 4) + "1" + "]" * (depth // 4) + "}",
            '{"a":' * (depth // 3) + "1" + "}" * (depth // 3),
        ]
    )
)
messages = st.one_of(
    # Well-formed-looking messages with hostile field values.
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["ping", "ack", "mark_read", "mark_all_read", "subscribe", "hello", ""])
            | st.text(max_size=12)
        },
        optional={"seq": number_garbage, "group": st.text(max_size=12), "user_id": json_values},
    ).map(lambda message: {"text": json.dumps(message)}),
    st.builds(lambda seq: {"type": "mark_read", "seq": seq}, number_garbage).map(
        lambda message: {"text": json.dumps(message)}
    ),
    st.builds(lambda seq: {"type": "ack", "seq": seq}, number_garbage).map(
        lambda message: {"text": json.dumps(message)}
    ),
    # Any JSON at all, and JSON nested deep.
    json_values.map(lambda value: {"text": json.dumps(value)}),
    deep_json.map(lambda text: {"text": text}),
    # Not JSON, including the empty string.
    st.text(max_size=200).map(lambda text: {"text": text}),
    # Binary frames.
    st.binary(max_size=200).map(lambda data: {"bytes": data}),
)


@pytest.fixture
def fuzzed_customer(db, settings):
    # Fuzz the parser here, not the limiters.
    settings.NOTIFICATION_SOCKET_RATE_LIMIT = settings.NOTIFICATION_USER_RATE_LIMIT = "10000/second"
    return UserFactory()


@pytest.fixture
def session_key(fuzzed_customer):
    return session_key_for(fuzzed_customer)


def tracebacks_logged(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR and record.exc_info]


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.none() | after_garbage, sent=st.lists(messages, min_size=1, max_size=15))
def test_any_garbage_from_a_client_gets_valid_replies_never_a_crash_and_leaves_no_group_behind(
    fuzzed_customer, session_key, caplog, after, sent
):
    caplog.clear()

    async def scenario():
        communicator = socket(session_key, query="" if after is None else "?" + urlencode({"after": after}))
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        for message in sent:
            assert len(message.get("text", "")) <= MAX_BYTES
            await communicator.send_input({"type": "websocket.receive", **message})
        await communicator.send_json_to({"type": "ping"})
        while True:  # every reply is a known frame, until the final pong proves the socket still works
            # A deadline, not a pause: generous, so a loaded CI machine is not mistaken for a hang.
            output = await communicator.receive_output(timeout=20)
            assert output["type"] == "websocket.send", output  # never a close (1011 or any other)
            frame = json.loads(output["text"])
            assert frame["type"] in KNOWN_REPLIES, frame
            if frame["type"] == "error":
                assert frame["code"] and frame["detail"]
            if frame == {"type": "pong"} and await communicator.receive_nothing(timeout=0.05):
                break
        await communicator.disconnect()
        assert communicator.future.done() and communicator.future.exception() is None
        assert await group_members(user_group(fuzzed_customer.pk)) == set()

    async_to_sync(scenario)()
    assert tracebacks_logged(caplog) == []


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


# --- The black-box probe's findings (issue 21, item 5), pinned -----------------------------------


async def assert_left_every_group(user) -> None:
    assert await group_members(user_group(user.pk)) == set()


# Digits to `str.isdigit()` but not to `int()` ("²", "①"), or digits to both but not ASCII ("٣", "𝟗").
@pytest.mark.parametrize("after", ["²", "①", "1²", "٣", "𝟗", "9223372036854775808", "1" * 19 + "0"])
async def test_after_that_is_not_ascii_digits_within_64_bits_is_an_error_then_a_reset(caplog, after):
    customer = await make_user()
    communicator, _ = await open_socket(customer, query="?" + urlencode({"after": after}))

    assert (await communicator.receive_json_from())["code"] == "invalid_after"
    assert await communicator.receive_json_from() == {"type": "reset"}
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()
    await assert_left_every_group(customer)
    assert tracebacks_logged(caplog) == []


async def test_after_at_the_64_bit_limit_is_a_seq_never_issued():
    communicator, _ = await open_socket(await make_user(), query=f"?after={2**63 - 1}")
    assert await communicator.receive_json_from() == {"type": "reset"}
    await communicator.disconnect()


# Nested within the message cap: json.loads raises RecursionError (not ValueError) from about 1,000 levels.
@pytest.mark.parametrize(
    "text",
    [
        "[" * 4096,
        "[" * 2048 + "]" * 2048,
        '{"a":' * 600 + "1" + "}" * 600,
        '{"type": "mark_read", "seq": ' + "[" * 2000 + "]" * 2000 + "}",
        '{"type": "ping", "x": ' + "[" * 9 + "]" * 9 + "}",  # beyond the depth the protocol allows
    ],
)
async def test_deeply_nested_json_is_invalid_json_and_the_socket_stays_usable(caplog, text):
    assert len(text) <= MAX_BYTES
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    await communicator.send_to(text_data=text)

    frame = await communicator.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "invalid_json")
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()
    await assert_left_every_group(customer)
    assert tracebacks_logged(caplog) == []


async def test_json_nested_as_deep_as_the_protocol_allows_is_read():
    communicator, _ = await open_socket(await make_user())
    await communicator.send_to(text_data='{"type": "ping", "x": ' + "[" * 7 + "]" * 7 + "}")
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


# A JSON integer outside 1..2**63-1: 10**30 passed `type(seq) is int`, overflowed msgpack and got no reply.
@pytest.mark.parametrize("seq", [10**30, 2**64, 2**63, -(2**63), 0])
async def test_mark_read_with_a_seq_outside_64_bits_is_invalid_field(caplog, seq):
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    await communicator.send_to(text_data=json.dumps({"type": "mark_read", "seq": seq}))

    frame = await communicator.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "invalid_field")
    await communicator.disconnect()
    await assert_left_every_group(customer)
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


async def test_mark_read_with_the_largest_64_bit_seq_is_accepted():
    communicator, _ = await open_socket(await make_user())
    await communicator.send_json_to({"type": "mark_read", "seq": 2**63 - 1})
    await communicator.send_json_to({"type": "ping"})
    # No error, and no `unread` frame: it marked nothing, and a mark-read that changes nothing says nothing.
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


# --- Whatever else goes wrong in a handler: 4011, one line in the log, and the groups left ---------------

# Events a handler cannot take: a forward without its frame, and a frame without a usable seq. Both reach the
# consumer over the real layer. (A type with no handler at all is dropped: tests/notifications/test_consumer.py.)
BROKEN_EVENTS = [{"type": "frame.forward"}, {"type": "notification.created", "frame": {"seq": "1", "unread": 0}}]


@pytest.fixture
def first_errors_of_the_process(monkeypatch):
    """As if this process had seen no unexpected error yet (each one's traceback is logged once)."""
    monkeypatch.setattr(consumers, "_reported_errors", set())


def consumer_log(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "notifications.consumers"]


@pytest.mark.parametrize("event", BROKEN_EVENTS, ids=["forward_without_frame", "malformed_frame"])
async def test_an_unexpected_error_in_a_handler_closes_with_4011_and_leaves_the_groups(
    caplog, first_errors_of_the_process, event
):
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    await get_channel_layer().group_send(user_group(customer.pk), event)

    assert await closed_with(communicator, timeout=5) == 4011
    await communicator.wait(timeout=5)  # the application ended without raising (daphne would send 1011)
    await assert_left_every_group(customer)
    [record] = consumer_log(caplog)
    assert record.levelno == logging.ERROR and record.exc_info  # the first time: with its traceback
    assert "\n" not in record.getMessage()


async def test_the_same_unexpected_error_again_logs_one_line_without_a_traceback(caplog, first_errors_of_the_process):
    customer = await make_user()
    for _ in range(20):
        communicator, _ = await open_socket(customer)
        await get_channel_layer().group_send(user_group(customer.pk), BROKEN_EVENTS[0])
        assert await closed_with(communicator, timeout=5) == 4011
        await communicator.wait(timeout=5)

    records = consumer_log(caplog)
    assert [bool(record.exc_info) for record in records] == [True] + [False] * 19
    assert {record.levelno for record in records[1:]} == {logging.WARNING}
    assert all("\n" not in record.getMessage() and len(record.getMessage()) < 300 for record in records)
    await assert_left_every_group(customer)


async def test_a_cancelled_socket_closes_with_4001_and_leaves_the_groups():
    customer = await make_user()
    communicator, _ = await open_socket(customer)

    communicator.future.cancel()  # what daphne does to its applications when it stops

    assert await closed_with(communicator) == 4001
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    await assert_left_every_group(customer)
