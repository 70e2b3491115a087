"""The outbox: a notification exists if and only if the change committed, and is published after commit."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifications.frames import NOTIFICATION_FRAME_KEYS
from notifications.groups import STAFF_GROUP, user_group
from notifications.models import Notification, NotificationCounter
from notifications.selectors import UnreadState
from notifications.services import (
    notification_record,
    notifications_batched,
    notifications_mark_read,
    notifications_publish,
    notifications_publish_pending,
)
from orders.models import OrderStatus
from orders.transitions import order_transition
from orders.transitions_bulk import orders_transition_bulk
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import UserFactory, place_order
from tests.notifications.support_replies import SUPPORT_REPLY

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 1}]},
    }
}


def test_committed_status_change_records_one_notification_and_publishes_it_after_commit(
    listen, customer, staff, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    listener = listen(user_group(customer.pk))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)
        # Written in the transaction, not yet published.
        notification = Notification.objects.get(recipient=customer)
        assert notification.published_at is None

    assert len(callbacks) == 1
    message = listener.receive()
    assert message["type"] == "notification.created"
    frame = message["frame"]
    assert frame["seq"] == notification.seq == 1
    assert frame["order"] == {
        "id": order.pk,
        "number": order.number,
        "status": "paid",
        "status_label": "Paid",
        "previous_status": "pending_payment",
        "version": 2,
    }
    assert frame["title"] == f"Payment received for order {order.number}"
    assert frame["url"] == order.get_absolute_url()
    assert frame["unread"] == 1
    notification.refresh_from_db()
    assert notification.published_at is not None
    assert notification.actor == staff


def test_after_commit_a_change_reads_nothing_back_it_claims_sends_and_marks_its_row(
    listen, customer, staff, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """The row and its unread count go to the hook as they are: COMMIT-to-client is the claim and the send."""
    order = place_order(customer=customer)
    listener = listen(user_group(customer.pk))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)
    assert len(callbacks) == 1

    with django_assert_num_queries(2):  # the claim before the send, marking it published after
        callbacks[0]()

    frame = listener.receive()["frame"]
    assert (frame["seq"], frame["unread"], frame["unread_version"]) == (1, 1, 1)
    assert not Notification.objects.filter(published_at=None).exists()


def test_a_changes_frame_carries_the_unread_count_of_its_own_version(
    listen, customer, django_capture_on_commit_callbacks
):
    orders = [place_order(customer=customer) for _ in range(2)]
    listener = listen(user_group(customer.pk))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for order in orders:
            order_transition(order_id=order.pk, to_status=OrderStatus.PAID)

    frames = [listener.receive()["frame"] for _ in orders]
    # Each count as its notification was recorded; the client shows the highest version's (docs/protocol.md).
    assert [(frame["seq"], frame["unread"], frame["unread_version"]) for frame in frames] == [(1, 1, 1), (2, 2, 2)]


def test_a_changes_unread_count_counts_what_was_read_before_it(listen, customer, django_capture_on_commit_callbacks):
    """Read under the counter's lock, which a mark-read takes first: the count belongs to the version it carries."""
    for order in [place_order(customer=customer) for _ in range(2)]:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    notifications_mark_read(user_id=customer.pk, seq=1)
    listener = listen(user_group(customer.pk))

    order = place_order(customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)

    frame = listener.receive()["frame"]
    # Versions: two recorded, one mark-read, this one.
    assert (frame["seq"], frame["unread"], frame["unread_version"]) == (3, 2, 4)


def test_rolled_back_change_leaves_no_notification_and_publishes_nothing(customer, django_capture_on_commit_callbacks):
    order = place_order(customer=customer)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
            raise RuntimeError("payment provider said no after all")

    assert callbacks == []
    assert not Notification.objects.exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT


def test_save_without_status_change_notifies_nobody(customer):
    order = place_order(customer=customer)
    order.note = "Edited"
    order.save()
    assert not Notification.objects.exists()


def test_placing_an_order_notifies_nobody(customer):
    place_order(customer=customer)
    assert not Notification.objects.exists()


def test_each_customer_gets_a_gapless_sequence(customer, other_customer):
    mine = place_order(customer=customer, status=OrderStatus.DELIVERED)
    place_order(customer=other_customer, status=OrderStatus.PAID)
    order_transition(order_id=mine.pk, to_status=OrderStatus.REFUNDED)

    assert list(customer.notifications.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert list(other_customer.notifications.values_list("seq", flat=True)) == [1]


def test_a_rolled_back_notification_gives_its_seq_back(customer):
    first, second = place_order(customer=customer), place_order(customer=customer)
    with pytest.raises(RuntimeError), transaction.atomic():
        order_transition(order_id=first.pk, to_status=OrderStatus.PAID)
        raise RuntimeError
    order_transition(order_id=second.pk, to_status=OrderStatus.PAID)
    assert list(customer.notifications.values_list("seq", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(customer):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        notification_record(recipient_id=customer.pk, kind="order.status_changed", payload={})


def assert_recording_refused_before_anything_is_written(customer, payload, *, match: str, on_commit) -> None:
    with on_commit() as callbacks, transaction.atomic():
        with pytest.raises(ValueError, match=match):
            notification_record(recipient_id=customer.pk, kind=SUPPORT_REPLY.name, payload=payload)

    assert callbacks == []
    assert not Notification.objects.exists()
    assert not NotificationCounter.objects.exists()  # no seq was taken either


# Protocol-relative ("//", and "/\" which browsers read the same), absolute, script, and a tab that browsers
# drop, turning "/<tab>/host" into "//host".
OFF_SITE_URLS = [
    "//evil.example/",
    "/\\evil.example/",
    "/\t/evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("url", [*OFF_SITE_URLS, "orders/", "", None, 42])
def test_a_notification_whose_url_is_no_path_on_this_site_is_refused_before_anything_is_written(
    customer, url, django_capture_on_commit_callbacks
):
    assert_recording_refused_before_anything_is_written(
        customer, {"title": "?", "url": url}, match="path on this site", on_commit=django_capture_on_commit_callbacks
    )


@pytest.mark.parametrize("key", sorted(NOTIFICATION_FRAME_KEYS))
def test_a_payload_holding_a_key_the_frame_sets_is_refused_before_anything_is_written(
    customer, key, django_capture_on_commit_callbacks
):
    assert_recording_refused_before_anything_is_written(
        customer, {"title": "?", key: 1}, match=f"cannot hold {key}", on_commit=django_capture_on_commit_callbacks
    )


def test_a_notification_with_a_path_on_this_site_is_recorded(customer):
    with transaction.atomic():
        notification_record(recipient_id=customer.pk, kind=SUPPORT_REPLY.name, payload={"url": "/support/?q=1#a"})

    assert Notification.objects.get(recipient=customer).payload == {"url": "/support/?q=1#a"}


@requires_postgres()
@pytest.mark.django_db(transaction=True)
def test_concurrent_transactions_for_one_customer_get_distinct_consecutive_seqs():
    customer = UserFactory()
    orders = [place_order(customer=customer) for _ in range(8)]

    outcomes = run_concurrently(
        lambda order: order_transition(order_id=order.pk, to_status=OrderStatus.PAID), [(order,) for order in orders]
    )

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert sorted(customer.notifications.values_list("seq", flat=True)) == list(range(1, 9))


def test_bulk_change_of_n_orders_gives_n_notifications_published_in_one_batch(
    listen, staff, django_capture_on_commit_callbacks
):
    customers = [UserFactory() for _ in range(5)]
    orders = [place_order(customer=customer, status=OrderStatus.PROCESSING) for customer in customers]
    listeners = {customer.pk: listen(user_group(customer.pk)) for customer in customers}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.SHIPPED, actor=staff)

    assert len(callbacks) == 1  # one publish for the whole batch
    assert Notification.objects.filter(payload__order__status="shipped").count() == 5
    for customer in customers:
        frame = listeners[customer.pk].receive()["frame"]
        assert (frame["order"]["status"], frame["seq"], frame["unread"]) == ("shipped", 3, 3)
        assert listeners[customer.pk].receive_nothing()
    assert not Notification.objects.filter(payload__order__status="shipped", published_at=None).exists()


def test_skipped_orders_in_a_bulk_change_get_no_notification(staff):
    shippable = place_order(status=OrderStatus.PROCESSING)
    pending = place_order()
    orders_transition_bulk(order_ids=[shippable.pk, pending.pk], to_status=OrderStatus.SHIPPED, actor=staff)
    assert not Notification.objects.filter(recipient=pending.customer).exists()
    assert Notification.objects.filter(recipient=shippable.customer, payload__order__status="shipped").count() == 1


def test_staff_group_hears_every_orders_change_with_who_made_it(
    listen, staff, customer, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    staff_listener = listen(STAFF_GROUP)
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)
    message = staff_listener.receive()
    assert message["type"] == "frame.forward"
    assert message["frame"]["type"] == "order_changed"
    assert message["frame"]["order"]["number"] == order.number
    assert message["frame"]["actor"] == staff.get_username()
    assert message["frame"]["customer_id"] == customer.pk


def test_publish_failure_keeps_the_change_and_leaves_the_row_for_the_sweeper(
    customer, settings, django_capture_on_commit_callbacks, caplog
):
    order = place_order(customer=customer)
    settings.CHANNEL_LAYERS = DEAD_REDIS

    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    notification = Notification.objects.get()
    assert notification.published_at is None
    assert "the sweeper will retry" in caplog.text


def test_sweeper_publishes_what_was_left_unpublished(listen, customer, settings, django_capture_on_commit_callbacks):
    order = place_order(customer=customer)
    real_layers = settings.CHANNEL_LAYERS
    settings.CHANNEL_LAYERS = DEAD_REDIS
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    settings.CHANNEL_LAYERS = real_layers
    listener = listen(user_group(customer.pk))

    assert notifications_publish_pending(older_than=timedelta(minutes=1)) == 0  # too recent to be abandoned
    assert notifications_publish_pending(older_than=timedelta(0)) == 1

    assert listener.receive()["frame"]["seq"] == 1
    assert not Notification.objects.filter(published_at=None).exists()


def test_sweeper_leaves_published_rows_alone(customer):
    order = place_order(customer=customer, status=OrderStatus.PAID)
    Notification.objects.update(published_at=timezone.now())
    assert notifications_publish_pending(older_than=timedelta(0)) == 0
    assert order.customer.notifications.count() == 1


def test_publish_skips_ids_that_were_rolled_back():
    assert notifications_publish(notification_ids=[123_456]).count == 0


def test_nested_batches_publish_once_from_the_outermost(customer, django_capture_on_commit_callbacks):
    orders = [place_order(customer=customer) for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with notifications_batched(), transaction.atomic():
            order_transition(order_id=orders[0].pk, to_status=OrderStatus.PAID)
            with notifications_batched():
                order_transition(order_id=orders[1].pk, to_status=OrderStatus.PAID)
    assert len(callbacks) == 1


def test_mark_read_one_and_all_tells_every_socket_the_new_unread_count(
    listen, customer, django_capture_on_commit_callbacks
):
    place_order(customer=customer, status=OrderStatus.SHIPPED)  # three notifications
    listener = listen(user_group(customer.pk))

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_mark_read(user_id=customer.pk, seq=2) == UnreadState(count=2, version=4)
    assert listener.receive() == {
        "type": "unread.changed",
        "frame": {"type": "unread", "unread": 2, "unread_version": 4, "read_seqs": [2]},
    }

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_mark_read(user_id=customer.pk) == UnreadState(count=0, version=5)
    assert listener.receive()["frame"] == {"type": "unread", "unread": 0, "unread_version": 5, "read_seqs": None}


def test_mark_read_never_touches_another_customers_notifications(customer, other_customer):
    place_order(customer=other_customer, status=OrderStatus.PAID)
    notifications_mark_read(user_id=customer.pk, seq=1)
    notifications_mark_read(user_id=customer.pk)
    assert other_customer.notifications.get().read_at is None
