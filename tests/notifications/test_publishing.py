"""The outbox's publish path: each row is sent by one path only, and a row that cannot be sent holds up no other."""

import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import services
from notifications.claims import UNFLUSHED, notifications_claim, notifications_mark_published
from notifications.frames import PROTOCOL_FRAME_TYPES
from notifications.groups import STAFF_GROUP, user_group
from notifications.kinds import NotificationKind, notification_kind_register
from notifications.models import Notification
from notifications.publishing_loop import LOOP_GRACE
from notifications.services import notification_record, notifications_publish_pending
from orders.models import OrderStatus
from orders.notifications import ORDER_STATUS_CHANGED, order_status_payload
from orders.transitions import order_transition, orders_transition_each
from orders.transitions_bulk import orders_transition_bulk
from tests.factories import UserFactory, place_order
from tests.notifications.test_consumer import open_socket
from tests.notifications.test_services import DEAD_REDIS

pytestmark = pytest.mark.django_db

# jsonb stores any integer; the channel layer's msgpack cannot encode one beyond 64 bits.
BEYOND_64_BITS = 2**70


def sweep() -> int:
    return notifications_publish_pending(older_than=timedelta(0))


@pytest.fixture
def sweep_during_first_send(monkeypatch):
    """The sweeper runs while the first publish is on its way to Redis: the race, made deterministic.

    Returns what that sweep published, once it has run.
    """
    real_group_send_all = services.group_send_all
    swept: list[int] = []
    started = []

    async def group_send_all(messages):
        if not started:
            started.append(True)
            swept.append(await sync_to_async(sweep)())
        return await real_group_send_all(messages)

    monkeypatch.setattr(services, "group_send_all", group_send_all)
    return swept


def messages_for(listener) -> list[dict]:
    """Everything published to the listener's group until it goes quiet."""
    messages = []
    while True:
        try:
            messages.append(listener.receive(timeout=0.3))
        except TimeoutError:
            return messages


def record_unpublished(*, recipient, payload: dict) -> Notification:
    """A committed row whose after-commit publish never ran (the process died, Redis was down)."""
    with transaction.atomic():
        return notification_record(recipient_id=recipient.pk, kind=ORDER_STATUS_CHANGED.name, payload=payload)


def poison_payload(order) -> dict:
    """A real order's payload, but with a number that no frame carrying it can be published with."""
    payload = order_status_payload(order, previous_status=OrderStatus.PENDING_PAYMENT)
    payload["order"]["version"] = BEYOND_64_BITS
    return payload


# --- Item 12: one path sends each row ----------------------------------------------------


def test_a_sweep_racing_a_changes_own_publish_leaves_the_row_to_it_and_each_frame_is_sent_once(
    listen, customer, staff, sweep_during_first_send, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    customer_listener, staff_listener = listen(user_group(customer.pk)), listen(STAFF_GROUP)

    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)

    assert sweep_during_first_send == [0]  # the row was the after-commit publish's
    assert [message["frame"]["seq"] for message in messages_for(customer_listener)] == [1]
    assert [message["frame"]["order"]["status"] for message in messages_for(staff_listener)] == ["paid"]
    assert Notification.objects.get().published_at is not None


def test_a_changes_publish_after_the_sweeper_sent_its_row_sends_nothing_again(
    listen, customer, staff, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    customer_listener, staff_listener = listen(user_group(customer.pk)), listen(STAFF_GROUP)
    with django_capture_on_commit_callbacks(execute=False) as hooks:
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID, actor=staff)

    assert sweep() == 1  # the hook is late (a slow thread, a long commit): the sweeper got there first
    hooks[0]()

    assert [message["frame"]["seq"] for message in messages_for(customer_listener)] == [1]
    assert [message["frame"]["order"]["status"] for message in messages_for(staff_listener)] == ["paid"]


def test_a_bulk_changes_publish_racing_a_sweep_sends_each_row_once(
    listen, staff, sweep_during_first_send, django_capture_on_commit_callbacks
):
    customers = [UserFactory() for _ in range(3)]
    orders = [place_order(customer=customer) for customer in customers]
    staff_listener = listen(STAFF_GROUP)
    customer_listeners = [listen(user_group(customer.pk)) for customer in customers]

    with django_capture_on_commit_callbacks(execute=True):
        orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.PAID, actor=staff)

    assert sweep_during_first_send == [0]
    for listener in customer_listeners:
        assert [message["frame"]["seq"] for message in messages_for(listener)] == [1]
    assert sorted(message["frame"]["order"]["id"] for message in messages_for(staff_listener)) == sorted(
        order.pk for order in orders
    )


def test_a_bulk_change_sends_each_customer_and_the_staff_the_frames_one_change_at_a_time_would(
    monkeypatch, staff, django_capture_on_commit_callbacks
):
    """The same orders moved by the per-order path (then undone) and by the set-based one: the same messages."""
    customers = [UserFactory(), UserFactory()]
    orders = [place_order(customer=customers[index % 2], status=OrderStatus.PAID) for index in range(4)]
    real_group_send_all = services.group_send_all
    sent: list[list] = []

    async def group_send_all(messages):
        sent[-1] += messages
        return await real_group_send_all(messages)

    monkeypatch.setattr(services, "group_send_all", group_send_all)

    def published_by(transition) -> list:
        sent.append([])
        with transaction.atomic():
            with django_capture_on_commit_callbacks(execute=False) as hooks:
                transition(order_ids=[order.pk for order in orders], to_status=OrderStatus.PROCESSING, actor=staff)
            for hook in hooks:  # as at commit, seeing this transaction's rows
                hook()
            transaction.set_rollback(True)
        # The time each was written at is the one thing that differs.
        return sorted(
            ((group, message["type"], {k: v for k, v in message["frame"].items() if k != "created_at"})
             for group, message in sent[-1]),
            key=repr,
        )  # fmt: skip

    one_at_a_time = published_by(orders_transition_each)

    assert published_by(orders_transition_bulk) == one_at_a_time
    assert len(one_at_a_time) == 8  # each order's customer and the staff


@pytest.mark.parametrize(
    ("claimed_until", "swept"),
    [(timedelta(seconds=-1), 1), (timedelta(minutes=1), 0)],
    ids=["claim of a publisher that died, expired", "live claim"],
)
def test_the_sweeper_takes_a_row_only_once_its_claim_has_expired(listen, customer, claimed_until, swept):
    place_order(customer=customer, status=OrderStatus.PAID)
    Notification.objects.update(publish_claimed_until=timezone.now() + claimed_until)
    listener = listen(user_group(customer.pk))

    assert sweep() == swept

    assert len(messages_for(listener)) == swept
    assert Notification.objects.filter(published_at__isnull=False).count() == swept


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_claim_and_a_published_mark_on_their_own_commit_without_waiting_for_their_flush(customer):
    """Not worth an fsync each: lost in a crash, the sweeper sends the row again. The session stays durable."""
    notification = record_unpublished(
        recipient=customer, payload=order_status_payload(place_order(customer=customer), previous_status=None)
    )
    Notification.objects.update(published_at=None)  # its own publish ran at COMMIT: as if it had not

    with CaptureQueriesContext(connection) as queries:
        assert notifications_claim(notification_ids=[notification.pk], until=timezone.now() + timedelta(seconds=30))
        notifications_mark_published(notification_ids=[notification.pk])

    assert [UNFLUSHED in query["sql"] for query in queries.captured_queries] == [True, True]
    assert synchronous_commit() == "on"
    notification.refresh_from_db()
    assert notification.published_at is not None and notification.publish_claimed_until is None


def test_a_claim_inside_a_callers_transaction_leaves_that_transaction_durable(customer):
    notification = record_unpublished(
        recipient=customer, payload=order_status_payload(place_order(customer=customer), previous_status=None)
    )

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        notifications_claim(notification_ids=[notification.pk], until=timezone.now() + timedelta(seconds=30))
        notifications_mark_published(notification_ids=[notification.pk])
        assert synchronous_commit() == "on"

    assert not any(UNFLUSHED in query["sql"] for query in queries.captured_queries)


@pytest.mark.parametrize("changes", [1, 50])
def test_a_claim_outlasts_the_longest_its_send_may_take(
    changes, monkeypatch, settings, staff, django_capture_on_commit_callbacks
):
    orders = [place_order(customer=UserFactory()) for _ in range(changes)]
    real_group_send_all = services.group_send_all
    claims = []

    async def group_send_all(messages):
        claims.append((timezone.now(), len(messages), await sync_to_async(_claims_held)()))
        return await real_group_send_all(messages)

    monkeypatch.setattr(services, "group_send_all", group_send_all)
    with django_capture_on_commit_callbacks(execute=True):
        orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.PAID, actor=staff)

    [(sent_at, messages, held)] = claims
    longest_send = timedelta(
        seconds=settings.NOTIFICATION_PUBLISH_TIMEOUT + messages * services.SEND_SECONDS_PER_MESSAGE + LOOP_GRACE
    )
    assert len(held) == changes and min(held) > sent_at + longest_send


def _claims_held() -> list:
    claims = Notification.objects.exclude(publish_claimed_until=None)
    return list(claims.values_list("publish_claimed_until", flat=True))


def test_a_failed_send_gives_the_claim_back_so_the_next_sweep_retries_at_once(
    customer, settings, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    real_layers = settings.CHANNEL_LAYERS
    settings.CHANNEL_LAYERS = DEAD_REDIS
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    assert Notification.objects.get().publish_claimed_until is None
    settings.CHANNEL_LAYERS = real_layers

    assert sweep() == 1


# --- Item 10: a row that cannot be sent ---------------------------------------------------


def test_a_row_that_cannot_be_sent_does_not_hold_up_the_rows_after_it(listen, customer, staff):
    poison = record_unpublished(recipient=customer, payload=poison_payload(place_order(customer=customer)))
    others = [UserFactory() for _ in range(3)]
    good_orders = [place_order(customer=other, status=OrderStatus.PAID, actor=staff) for other in others]
    staff_listener = listen(STAFF_GROUP)
    listeners = {other.pk: listen(user_group(other.pk)) for other in others}
    poisoned_listener = listen(user_group(customer.pk))

    assert sweep() == 3

    for other in others:
        assert [message["frame"]["seq"] for message in messages_for(listeners[other.pk])] == [1]
    assert sorted(message["frame"]["order"]["id"] for message in messages_for(staff_listener)) == sorted(
        order.pk for order in good_orders
    )
    assert messages_for(poisoned_listener) == []
    poison.refresh_from_db()
    assert (poison.published_at, poison.quarantined_at, poison.publish_attempts) == (None, None, 1)
    assert poison.publish_error == "OverflowError: Integer value out of range"
    assert Notification.objects.filter(published_at=None).get() == poison


def test_a_row_that_keeps_failing_is_quarantined_after_its_attempts_with_one_warning_and_no_traceback(
    customer, settings, caplog
):
    poison = record_unpublished(recipient=customer, payload=poison_payload(place_order(customer=customer)))

    with caplog.at_level(logging.INFO):
        for _ in range(settings.NOTIFICATION_PUBLISH_MAX_ATTEMPTS + 2):
            assert sweep() == 0

    poison.refresh_from_db()
    assert poison.publish_attempts == settings.NOTIFICATION_PUBLISH_MAX_ATTEMPTS  # no attempt once quarantined
    assert poison.quarantined_at is not None and poison.published_at is None
    assert poison.publish_error == "OverflowError: Integer value out of range"
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert warnings == [
        f"Notification {poison.pk} (user {customer.pk}, seq {poison.seq}) quarantined after "
        f"{settings.NOTIFICATION_PUBLISH_MAX_ATTEMPTS} failed publishes: OverflowError: Integer value out of range"
    ]
    assert not [record for record in caplog.records if record.exc_info]


def test_a_change_that_cannot_be_sent_counts_its_after_commit_attempt_and_goes_to_the_sweeper(
    customer, django_capture_on_commit_callbacks
):
    order = place_order(customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        poison = record_unpublished(recipient=customer, payload=poison_payload(order))

    poison.refresh_from_db()
    assert (poison.published_at, poison.publish_claimed_until, poison.publish_attempts) == (None, None, 1)


def test_a_payload_the_frames_cannot_be_built_from_is_isolated_like_one_that_cannot_be_sent(listen, customer):
    """A stored payload without its order: building the staff frame fails, for that row alone."""
    broken = record_unpublished(recipient=customer, payload={"title": "An order changed"})
    other = UserFactory()
    place_order(customer=other, status=OrderStatus.PAID)
    listener = listen(user_group(other.pk))

    assert sweep() == 1

    assert [message["frame"]["seq"] for message in messages_for(listener)] == [1]
    broken.refresh_from_db()
    assert (broken.publish_attempts, broken.publish_error) == (1, "KeyError: 'order'")


def _kind_fanning_out(frame_type: str) -> NotificationKind:
    """A test app's kind whose fan-out sends staff a frame of `frame_type`."""
    return notification_kind_register(
        NotificationKind(
            name=f"tests.fanout_{frame_type}", fanout=lambda notification: [(STAFF_GROUP, {"type": frame_type})]
        )
    )


@pytest.mark.parametrize("frame_type", sorted(PROTOCOL_FRAME_TYPES))
def test_a_kind_whose_fan_out_sends_a_frame_type_the_protocol_reserves_fails_that_row_alone(
    listen, customer, frame_type
):
    kind = _kind_fanning_out(frame_type)
    with transaction.atomic():  # its after-commit publish never runs here: the sweeper finds it
        impostor = notification_record(recipient_id=customer.pk, kind=kind.name, payload={"title": "?"})
    place_order(customer=UserFactory(), status=OrderStatus.PAID)
    customer_listener, staff_listener = listen(user_group(customer.pk)), listen(STAFF_GROUP)

    assert sweep() == 1

    assert messages_for(customer_listener) == []
    assert [message["frame"]["type"] for message in messages_for(staff_listener)] == ["order_changed"]
    impostor.refresh_from_db()
    assert impostor.published_at is None
    assert impostor.publish_error.startswith(f"ValueError: A fan-out frame cannot be of type '{frame_type}'")


def test_the_layer_being_down_counts_no_attempt_and_stops_the_sweep_until_the_next_beat(customer, settings, caplog):
    record_unpublished(recipient=customer, payload=poison_payload(place_order(customer=customer)))
    for _ in range(2):
        place_order(customer=UserFactory(), status=OrderStatus.PAID)
    settings.CHANNEL_LAYERS = DEAD_REDIS

    assert notifications_publish_pending(older_than=timedelta(0), chunk_size=1) == 0

    assert caplog.text.count("the sweeper will retry") == 1  # the first chunk failed; the sweep stopped there
    assert (
        list(Notification.objects.values_list("publish_attempts", "publish_claimed_until", "quarantined_at"))
        == [(0, None, None)] * 3
    )


# A quarantined row's seq is not a hole: its frame is built from the database row, as for any seq a socket
# missed live, and JSON (unlike msgpack) carries any integer.


def _quarantine_a_change_that_cannot_be_sent(customer) -> Notification:
    """The change commits, its after-commit publish fails, and the sweeper gives up on it."""
    order = place_order(customer=customer)
    poison = record_unpublished(recipient=customer, payload=poison_payload(order))
    for _ in range(django_settings.NOTIFICATION_PUBLISH_MAX_ATTEMPTS):
        sweep()
    poison.refresh_from_db()
    assert poison.quarantined_at is not None
    return poison


@pytest.mark.django_db(transaction=True)
async def test_a_socket_fills_in_a_quarantined_notification_from_the_database_when_the_next_one_arrives():
    customer = await sync_to_async(UserFactory)()
    communicator, hello = await open_socket(customer)
    poison = await sync_to_async(_quarantine_a_change_that_cannot_be_sent)(customer)

    await sync_to_async(place_order)(customer=customer, status=OrderStatus.PAID)

    # Both orders placed meanwhile are announced live, with no seq, before the paid one's notification.
    for _ in range(2):
        assert (await communicator.receive_json_from(timeout=5))["type"] == "order_placed"
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert hello["last_seq"] == 0
    assert [(frame["seq"], frame["order"]["version"]) for frame in frames] == [(poison.seq, BEYOND_64_BITS), (2, 2)]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_resuming_past_a_quarantined_notification_replays_it_from_the_database():
    customer = await sync_to_async(UserFactory)()
    poison = await sync_to_async(_quarantine_a_change_that_cannot_be_sent)(customer)

    communicator, hello = await open_socket(customer, query="?after=0")

    frame = await communicator.receive_json_from(timeout=5)
    assert (hello["last_seq"], frame["seq"], frame["order"]["version"]) == (poison.seq, 1, BEYOND_64_BITS)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
