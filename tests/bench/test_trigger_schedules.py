"""The latency run's schedule over trigger processes: each change due once, on time; each order with one trigger."""

import pytest

from bench.load import trigger_schedules
from bench.trigger import due_changes

START = 1_000.0


@pytest.mark.parametrize("triggers", [1, 2, 3])
def test_the_triggers_make_every_change_of_the_schedule_once_each_on_orders_of_its_own(triggers):
    order_ids = list(range(100, 110))

    schedules = trigger_schedules(order_ids, rate=200, count=50, triggers=triggers, start_at=START)

    changes = [change for schedule in schedules for change in due_changes(**schedule)]
    assert sorted(due for due, _ in changes) == pytest.approx([START + i / 200 for i in range(50)])
    owners = [set(schedule["order_ids"]) for schedule in schedules]
    assert sorted(order for owned in owners for order in owned) == order_ids  # each order with one trigger
    for schedule, owned in zip(schedules, owners, strict=True):
        assert {order for _, order in due_changes(**schedule)} <= owned


def test_more_triggers_than_orders_is_refused():
    with pytest.raises(ValueError, match="at least as many orders"):
        trigger_schedules([1], rate=10, count=10, triggers=2, start_at=START)
