"""The chat scenario's schedule: each conversation alternates sides, and no user goes over the servers' limits."""

import pytest

from bench.chat import chat_schedule, conversation_sides, limits_exceeded


def test_the_schedule_alternates_each_conversations_sides_and_spaces_each_staff_members_sends_evenly():
    customers = [_Person(user_id=i, order_id=1000 + i) for i in range(6)]
    staff = [_Person(user_id=100 + i, order_id=None) for i in range(2)]  # three conversations each
    sides = conversation_sides(customers, staff)

    sends = chat_schedule(sides, rate=6, seconds=4, start_at=0.0)

    assert len(sends) == 24 and len({send.client_id for send in sends}) == 24
    for side in sides:
        pairs = [(send.sender, send.receiver) for send in sends if send.order_id == side.customer.order_id]
        customer_first = (side.customer.user_id, side.staff.user_id)
        staff_first = customer_first[::-1]
        assert pairs in ([customer_first, staff_first] * 2, [staff_first, customer_first] * 2)
    for member in staff:
        times = [send.due_at for send in sends if send.sender == member.user_id]
        gaps = {round(later - earlier, 6) for earlier, later in zip(times, times[1:], strict=False)}
        assert gaps == {round(2 * 2 / 6, 6)}  # every 2 x 2 staff / 6 per second: evenly, never bunched


def test_more_conversations_than_the_staff_sockets_may_watch_are_refused(settings):
    settings.CHAT_CONVERSATIONS_PER_SOCKET = 2
    customers = [_Person(user_id=i, order_id=1000 + i) for i in range(5)]
    staff = [_Person(user_id=100, order_id=None), _Person(user_id=101, order_id=None)]
    with pytest.raises(ValueError, match="CHAT_CONVERSATIONS_PER_SOCKET"):
        conversation_sides(customers, staff)


def test_a_schedule_over_a_per_user_limit_of_the_servers_is_named(settings):
    settings.CHAT_SEND_RATE_LIMIT = "2/second"
    sides = conversation_sides([_Person(user_id=1, order_id=10)], [_Person(user_id=2, order_id=None)])

    sends = chat_schedule(sides, rate=10, seconds=2, start_at=0.0)  # each side five a second

    assert limits_exceeded(sends) == ["CHAT_SEND_RATE_LIMIT 2 per 1 second: 5 sends by one user"]


class _Person:
    """A customer or staff member as the schedule sees them: ids only."""

    def __init__(self, *, user_id: int, order_id: int | None):
        self.user_id, self.order_id = user_id, order_id
