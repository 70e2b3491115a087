"""Fuzzing the chat messages: whatever a client sends, valid replies, no crash, and only what the rules allow stored."""

import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications.groups import user_group
from support.models import BODY_MAX_LENGTH, Message
from support.rules import message_body_clean
from tests.factories import UserFactory, place_order
from tests.notifications.conftest import group_members
from tests.notifications.test_consumer import session_key_for, socket
from tests.notifications.test_consumer_fuzz import json_values, number_garbage, tracebacks_logged

pytestmark = [pytest.mark.django_db(transaction=True)]

CHAT_REPLIES = {"pong", "error", "chat.opened", "chat.message", "chat.sent", "chat.read"}
OWN, OTHERS, UNKNOWN = "own order", "another customer's order", "no such order"


def fresh_client_id() -> str:
    return str(uuid.uuid4())


orders = st.sampled_from([OWN, OTHERS, UNKNOWN]) | number_garbage
bodies = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(categories=("Cc", "Zs", "Zl", "Zp", "Cf")), max_size=20),  # control and space
    st.sampled_from(["", " ", "\n\r\t", "\x00", "a\ud800b", "\udfff", "x" * BODY_MAX_LENGTH, "x" * 2001]),
    json_values,
)
printable = st.text(alphabet=st.characters(categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=80)
client_ids = (
    st.uuids().map(str) | st.sampled_from(["", "not-a-uuid", str(uuid.uuid4()).upper(), "{" * 36]) | json_values
)
chat_messages = st.one_of(
    # Sends that are well formed but for, perhaps, their body or `internal`: some are stored, most are not.
    st.fixed_dictionaries(
        # A fresh client_id each (hypothesis's own uuids repeat, which makes retries: the branch below has those).
        {
            "type": st.just("chat.send"),
            "order": st.just(OWN),
            "body": printable | bodies,
            "client_id": st.builds(fresh_client_id),
        },
        optional={"internal": st.booleans()},
    ),
    st.fixed_dictionaries(
        {"type": st.just("chat.send")},
        optional={"order": orders, "body": bodies, "client_id": client_ids, "internal": st.booleans() | json_values},
    ),
    st.fixed_dictionaries({"type": st.just("chat.open")}, optional={"order": orders, "after": number_garbage}),
    st.fixed_dictionaries({"type": st.just("chat.read")}, optional={"order": orders, "seq": number_garbage}),
    st.fixed_dictionaries({"type": st.just("chat.close")}, optional={"order": orders}),
    st.fixed_dictionaries({"type": st.sampled_from(["chat.", "chat.sent", "chat.message", "chat.typing"])}),
)


@pytest.fixture
def chat_fuzz(db, settings):
    """A customer with an order, another customer's order, and the customer's session; limits out of the way."""
    settings.NOTIFICATION_SOCKET_RATE_LIMIT = settings.NOTIFICATION_USER_RATE_LIMIT = "10000/second"
    settings.CHAT_SEND_RATE_LIMIT = "10000/second"
    customer = UserFactory()
    own, others = place_order(customer=customer), place_order()
    return customer, {OWN: own.pk, OTHERS: others.pk, UNKNOWN: others.pk + 1000}, session_key_for(customer)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.lists(chat_messages, min_size=1, max_size=12))
def test_any_chat_message_gets_valid_replies_never_a_crash_and_stores_only_what_the_rules_allow(
    chat_fuzz, caplog, sent
):
    customer, order_ids, session_key = chat_fuzz
    caplog.clear()
    sent = [{k: order_ids.get(v, v) if k == "order" and isinstance(v, str) else v for k, v in m.items()} for m in sent]

    async def scenario():
        communicator = socket(session_key)
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        for message in sent:
            await communicator.send_to(text_data=json.dumps(message))
        # Last, a good send: posts are stored in turn, so its chat.sent comes after every earlier send's answer.
        last = {"type": "chat.send", "order": order_ids[OWN], "body": "Last one", "client_id": fresh_client_id()}
        await communicator.send_json_to(last)
        while True:  # every reply is a known frame, until the last send's answer proves the socket still works
            output = await communicator.receive_output(timeout=20)
            assert output["type"] == "websocket.send", output  # never a close
            frame = json.loads(output["text"])
            assert frame["type"] in CHAT_REPLIES, frame
            if frame["type"] == "error":
                assert frame["code"] and frame["detail"]
            if frame.get("type") in ("chat.message", "chat.sent"):
                assert frame["order"] == order_ids[OWN]
            if frame["type"] == "chat.sent" and frame["client_id"] == last["client_id"]:
                break
        await communicator.disconnect()
        assert await group_members(user_group(customer.pk)) == set()

    async_to_sync(scenario)()
    assert tracebacks_logged(caplog) == []
    for message in Message.objects.select_related("conversation"):
        assert (message.conversation.order_id, message.author_id, message.internal) == (
            order_ids[OWN],
            customer.pk,
            False,
        )
        assert message_body_clean(message.body) == message.body
