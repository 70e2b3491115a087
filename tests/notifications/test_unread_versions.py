"""Unread counts carry a version: it moves on with every change to a user's unread set, in commit order, and one
version always means one count, so a client can apply counts last-writer-wins (docs/reliability.md, probe row 11)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.groups import user_group
from notifications.models import Notification
from notifications.selectors import UnreadState, live_state
from notifications.services import notifications_mark_read, notifications_prune
from orders.models import OrderStatus
from orders.notifications import notification_record_order_status_change
from orders.transitions import order_transition
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import place_order


def record(user) -> None:
    notification_record_order_status_change(order=place_order(customer=user), previous_status=None)


def age(user, seq: int) -> None:
    Notification.objects.filter(recipient=user, seq=seq).update(created_at=timezone.now() - timedelta(days=100))


def prune() -> None:
    notifications_prune(older_than=timedelta(days=90))


# (what is done, how far the version moves, the unread count after); from two unread notifications, seqs 1 and 2.
CHANGES = [
    ("a notification is recorded", lambda user: record(user), 1, 3),
    ("one unread is marked read", lambda user: notifications_mark_read(user_id=user.pk, seq=1), 1, 1),
    ("a read one is marked read again", lambda user: (notifications_mark_read(user_id=user.pk, seq=1),
                                                      notifications_mark_read(user_id=user.pk, seq=1)), 1, 1),
    ("a seq that does not exist is marked read", lambda user: notifications_mark_read(user_id=user.pk, seq=9), 0, 2),
    ("all are marked read", lambda user: notifications_mark_read(user_id=user.pk), 1, 0),
    ("all are marked read twice", lambda user: (notifications_mark_read(user_id=user.pk),
                                                notifications_mark_read(user_id=user.pk)), 1, 0),
    ("an old unread one is pruned", lambda user: (age(user, 1), prune()), 1, 1),
    ("an old read one is pruned", lambda user: (notifications_mark_read(user_id=user.pk, seq=1), age(user, 1),
                                                prune()), 1, 1),
]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "apply", "moves", "unread"), CHANGES, ids=[row[0] for row in CHANGES])
def test_the_version_moves_on_with_every_change_to_the_unread_set_and_with_nothing_else(
    customer, change, apply, moves, unread
):
    for _ in range(2):
        record(customer)
    before = live_state(user_id=customer.pk).unread

    apply(customer)

    assert live_state(user_id=customer.pk).unread == UnreadState(count=unread, version=before.version + moves)


@pytest.mark.django_db
def test_a_mark_read_that_changes_nothing_returns_none_and_sends_nothing(
    listen, customer, django_capture_on_commit_callbacks
):
    record(customer)
    notifications_mark_read(user_id=customer.pk)
    listener = listen(user_group(customer.pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert notifications_mark_read(user_id=customer.pk) is None
        assert notifications_mark_read(user_id=customer.pk, seq=1) is None
    assert callbacks == []
    assert listener.receive_nothing()


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_notifications_and_mark_reads_give_every_version_one_count_and_the_newest_the_final_one(
    listen, customer
):
    orders = [place_order(customer=customer) for _ in range(8)]  # pending: no notification yet
    listener = listen(user_group(customer.pk))

    def act(what, order_id):
        if what == "pay":
            return order_transition(order_id=order_id, to_status=OrderStatus.PAID) and None
        return notifications_mark_read(user_id=customer.pk)

    outcomes = run_concurrently(act, [("pay", order.pk) for order in orders] + [("mark all", None)] * 8)

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    marked = [outcome for outcome in outcomes if outcome is not None]
    frames = [listener.receive()["frame"] for _ in range(len(orders) + len(marked))]
    assert listener.receive_nothing()
    seen = {(frame["unread_version"], frame["unread"]) for frame in frames} | {(s.version, s.count) for s in marked}
    counts_by_version = {}
    for version, count in seen:
        counts_by_version.setdefault(version, set()).add(count)
    assert all(len(counts) == 1 for counts in counts_by_version.values()), counts_by_version
    final = live_state(user_id=customer.pk).unread
    assert final.version == len(orders) + len(marked)  # one step per change: 8 notifications, each real mark
    assert max(counts_by_version) == final.version
    assert counts_by_version[final.version] == {final.count}
