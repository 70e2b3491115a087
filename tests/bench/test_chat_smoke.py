"""The chat scenario at small scale against the e2e servers: every message reaches the other side once, and only it.

`make bench BENCH_ARGS="--chat"` measures speed; this only proves its measuring code and the paths it drives are
correct (never a time): a broken chat bench, or a conversation that leaks or loses messages under load, fails
`make test`.
"""

import pytest

from bench.chat import chat_against_notifications, chat_schedule, conversation_sides, limits_exceeded
from bench.data import conversations_create, customers_create, staff_create
from bench.load import Generators, Triggers
from bench.scenarios import storm
from tests.conftest import requires_postgres
from tests.live.servers import live_db

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]

CONVERSATIONS, STAFF, IDLE = 20, 20, 20
RATE, STATUS_RATE, SECONDS = 20, 20, 2  # each user sends a message every 2 s: within the per-user chat limit


@pytest.fixture
def generators():
    with Generators(2) as generators:
        yield generators


@pytest.fixture
def triggers(stack):
    with Triggers(2, stack.env) as triggers:  # the servers' database and channel layer
        yield triggers


def test_every_chat_message_reaches_the_other_side_once_while_status_notifications_are_timed_with_and_without(
    stack, generators, triggers
):
    idle = customers_create(IDLE, run="chat-idle")
    chatting = customers_create(CONVERSATIONS, run="chat")
    staff = staff_create(STAFF, run="chat")
    conversations_create([customer.order_id for customer in chatting])
    sides = conversation_sides(chatting, staff)
    assert limits_exceeded(chat_schedule(sides, rate=RATE, seconds=60, start_at=0.0)) == []

    connected = storm(generators, [stack.web], [*idle, *chatting, *staff], concurrency=20)
    assert (connected["connected"], connected["failures"]) == (IDLE + CONVERSATIONS + STAFF, {})
    watches = [[user_id, s.customer.order_id] for s in sides for user_id in (s.customer.user_id, s.staff.user_id)]
    assert generators.chat_open(watches) == {"opened": 2 * CONVERSATIONS, "errors": {}}

    result = chat_against_notifications(
        generators, triggers, [stack.web], sides, idle, rates=[RATE], status_rate=STATUS_RATE, seconds=SECONDS, rounds=1
    )

    without, with_chat = result["phases"]
    assert (without["with_chat"], without["chat"], with_chat["with_chat"]) == (False, None, True)
    for phase in (without, with_chat):
        status = phase["status"]
        assert (status["received"], status["lost"], status["duplicates"]) == (STATUS_RATE * SECONDS, 0, 0)
        assert status["foreign_frames"] == 0  # the staff sockets' order news is theirs, not a leak
        groups = status["latency_ms_by_group"]
        assert (groups["idle"]["changes"], groups["chatting"]["changes"]) == (SECONDS * STATUS_RATE // 2,) * 2
        assert groups["idle"]["lost"] == groups["chatting"]["lost"] == 0
    chat = with_chat["chat"]
    messages = RATE * (SECONDS + 2)  # the chat runs a second before and after the status changes
    assert (chat["messages"], chat["sent"], chat["received"], chat["unacked"]) == (messages,) * 3 + (0,)
    assert (chat["lost"], chat["duplicates"], chat["foreign_frames"], chat["errors"]) == (0, 0, 0, {})
    assert chat["latency_ms"]["max"] > 0 and chat["ack_ms"]["max"] > 0 and chat["served_rate"] > 0
    assert len(chat["p50_ms_by_tenth"]) == 10 and None not in chat["p50_ms_by_tenth"]
    assert generators.stats()["staff_news"] > 0  # staff sockets heard the status changes, as staff pages do
