"""Concurrent changes of one order: the row lock lets one win; the other is refused, clearly."""

import pytest

from orders.models import Order, OrderEventType, OrderStatus
from orders.tasks import confirm_payment
from orders.transitions import InvalidTransition, StaleOrder, order_transition
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import StaffFactory, place_order

pytestmark = [requires_postgres(), pytest.mark.django_db(transaction=True)]


def status_changes(order):
    return list(
        order.events.filter(type=OrderEventType.STATUS_CHANGED).values_list("old_status", "new_status", "actor_id")
    )


def test_two_staff_saving_the_same_version_one_wins_the_other_is_told_it_is_stale():
    order = place_order(status=OrderStatus.PROCESSING)
    first, second = StaffFactory(), StaffFactory()
    before = status_changes(order)

    outcomes = run_concurrently(
        lambda staff, status: order_transition(
            order_id=order.pk, to_status=status, actor=staff, expected_version=order.version
        ),
        [(first, OrderStatus.SHIPPED), (second, OrderStatus.CANCELLED)],
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, Order)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], StaleOrder)
    order.refresh_from_db()
    assert order.status == winners[0].status
    assert order.version == winners[0].version
    new_events = status_changes(order)[len(before) :]
    assert len(new_events) == 1 and new_events[0][1] == order.status
    assert order.customer.notifications.filter(payload__order__status=order.status).count() == 1


def test_staff_cancel_racing_the_payment_task_ends_cancelled_with_a_truthful_history():
    order = place_order()
    staff = StaffFactory()

    outcomes = run_concurrently(
        lambda job: job(),
        [
            (lambda: order_transition(order_id=order.pk, to_status=OrderStatus.CANCELLED, actor=staff),),
            (lambda: confirm_payment.delay(order.pk).get(),),
        ],
    )

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED  # a paid order may still be cancelled
    changes = status_changes(order)
    if outcomes[1] is True:  # payment won the lock: paid, then cancelled
        assert changes == [("pending_payment", "paid", None), ("paid", "cancelled", staff.pk)]
    else:  # the cancel won: the task saw it was overtaken and did nothing
        assert outcomes[1] is False
        assert changes == [("pending_payment", "cancelled", staff.pk)]
    assert isinstance(outcomes[0], Order)
    assert order.customer.notifications.count() == len(changes)


def test_many_concurrent_moves_of_one_order_keep_a_consistent_history():
    order = place_order(status=OrderStatus.PAID)
    targets = [OrderStatus.PROCESSING, OrderStatus.CANCELLED, OrderStatus.REFUNDED] * 3
    before = status_changes(order)

    outcomes = run_concurrently(
        lambda status: order_transition(order_id=order.pk, to_status=status), [(t,) for t in targets]
    )

    order.refresh_from_db()
    changes = status_changes(order)
    new = changes[len(before) :]
    # Each successful call is one event, and the events chain: each starts where the last ended.
    assert len(new) == sum(isinstance(outcome, Order) for outcome in outcomes) >= 1
    assert all(changes[i][1] == changes[i + 1][0] for i in range(len(changes) - 1))
    assert changes[-1][1] == order.status
    assert order.version == 1 + len(changes)
    assert all(isinstance(o, (Order, InvalidTransition)) for o in outcomes)
