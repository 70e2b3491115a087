"""The metrics of notifications/metrics.py, read the way Prometheus reads them: a scrape of /metrics."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Notification
from notifications.receipts import receipts_written
from notifications.services import notifications_publish_pending
from orders.models import OrderStatus
from orders.transitions import order_transition
from orders.transitions_bulk import orders_transition_bulk
from tests.conftest import requires_redis
from tests.factories import UserFactory, place_order
from tests.notifications.test_consumer import closed_with, open_socket, socket
from tests.notifications.test_services import DEAD_REDIS

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(**headers) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape of /metrics by the Django test client (from 127.0.0.1), by name and labels."""
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


ascrape = sync_to_async(scrape)


# --- Sockets ---------------------------------------------------------------------------------------------


@requires_redis()
async def test_an_open_socket_is_counted_and_its_close_is_counted_by_code():
    before = await ascrape()

    communicator, _ = await open_socket(await sync_to_async(UserFactory)())
    opened = await ascrape()
    await communicator.disconnect(code=1000)
    closed = await ascrape()

    assert value(opened, "shop_ws_connections") == value(before, "shop_ws_connections") + 1
    assert value(opened, "shop_ws_handshakes_total", outcome="accepted") == (
        value(before, "shop_ws_handshakes_total", outcome="accepted") + 1
    )
    assert value(closed, "shop_ws_connections") == value(before, "shop_ws_connections")
    assert value(closed, "shop_ws_closes_total", code="1000") == value(before, "shop_ws_closes_total", code="1000") + 1


async def test_an_anonymous_handshake_is_counted_as_unauthenticated_and_closed_with_4401():
    before = await ascrape()

    communicator = socket(None)
    await communicator.connect()
    assert await closed_with(communicator) == 4401
    await communicator.wait()
    after = await ascrape()

    assert value(after, "shop_ws_handshakes_total", outcome="unauthenticated") == (
        value(before, "shop_ws_handshakes_total", outcome="unauthenticated") + 1
    )
    assert value(after, "shop_ws_closes_total", code="4401") == value(before, "shop_ws_closes_total", code="4401") + 1
    assert value(after, "shop_ws_connections") == value(before, "shop_ws_connections")


async def test_a_handshake_from_another_site_is_counted_as_refused_and_never_as_a_socket():
    before = await ascrape()

    communicator = socket(None, origin="https://evil.example")
    connected, _ = await communicator.connect()
    await communicator.wait()
    after = await ascrape()

    assert not connected
    assert value(after, "shop_ws_handshakes_total", outcome="refused") == (
        value(before, "shop_ws_handshakes_total", outcome="refused") + 1
    )
    assert value(after, "shop_ws_connections") == value(before, "shop_ws_connections")


# --- Publishing ------------------------------------------------------------------------------------------


@requires_redis()
def test_a_change_committed_is_counted_as_published_on_commit_with_its_latency():
    order = place_order(customer=UserFactory())
    before = scrape()

    order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    after = scrape()

    assert value(after, "shop_notifications_published_total", path="commit") == (
        value(before, "shop_notifications_published_total", path="commit") + 1
    )
    assert value(after, "shop_notification_commit_to_publish_seconds_count") == (
        value(before, "shop_notification_commit_to_publish_seconds_count") + 1
    )
    assert value(after, "shop_notification_commit_to_publish_seconds_bucket", le="+Inf") == (
        value(after, "shop_notification_commit_to_publish_seconds_count")
    )


@requires_redis()
def test_a_bulk_change_is_counted_as_published_in_a_batch():
    orders = [place_order(customer=UserFactory()) for _ in range(3)]
    before = scrape()

    orders_transition_bulk(order_ids=[order.pk for order in orders], to_status=OrderStatus.PAID)
    after = scrape()

    assert value(after, "shop_notifications_published_total", path="batch") == (
        value(before, "shop_notifications_published_total", path="batch") + 3
    )


@requires_redis()
def test_a_failed_publish_is_counted_then_the_sweeper_publish_and_the_backlog_is_read_at_scrape(settings):
    real_layers = settings.CHANNEL_LAYERS
    order = place_order(customer=UserFactory())
    before = scrape()

    settings.CHANNEL_LAYERS = DEAD_REDIS
    order_transition(order_id=order.pk, to_status=OrderStatus.PAID)
    Notification.objects.update(created_at=timezone.now() - timedelta(seconds=90))
    waiting = scrape()
    settings.CHANNEL_LAYERS = real_layers
    assert notifications_publish_pending(older_than=timedelta(0)) == 1
    swept = scrape()

    assert value(waiting, "shop_notification_publish_failures_total") == (
        value(before, "shop_notification_publish_failures_total") + 1
    )
    assert value(waiting, "shop_notifications_unpublished") == 1
    assert 90 <= value(waiting, "shop_notifications_oldest_unpublished_seconds") < 120
    assert value(swept, "shop_notifications_published_total", path="sweeper") == (
        value(before, "shop_notifications_published_total", path="sweeper") + 1
    )
    assert value(swept, "shop_notifications_unpublished") == 0
    assert value(swept, "shop_notifications_oldest_unpublished_seconds") == 0


async def test_a_pages_receipt_is_counted_from_the_notifications_creation_to_its_delivery():
    customer = await sync_to_async(UserFactory)()
    await sync_to_async(place_order)(customer=customer, status=OrderStatus.SHIPPED)  # seqs 1, 2, 3
    communicator, _ = await open_socket(customer)
    before = await ascrape()

    await communicator.send_json_to({"type": "ack", "seq": 2})
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await receipts_written()
    after = await ascrape()

    name = "shop_notification_commit_to_delivered_seconds"
    assert value(after, f"{name}_count") == value(before, f"{name}_count") + 2
    assert value(after, f"{name}_bucket", le="+Inf") == value(after, f"{name}_count")
    await communicator.disconnect()


def test_every_metric_is_exported_from_the_first_scrape():
    names = {name for name, _ in scrape()}

    assert {
        "shop_ws_connections",
        "shop_notifications_published_total",
        "shop_notifications_unpublished",
        "shop_notifications_oldest_unpublished_seconds",
        "shop_notification_publish_failures_total",
        "shop_notification_commit_to_publish_seconds_bucket",
        "shop_notification_commit_to_delivered_seconds_bucket",
    } <= names


# --- Access ----------------------------------------------------------------------------------------------


def test_metrics_are_refused_from_an_address_outside_the_allowed_networks():
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 403
    assert b"shop_" not in response.content


def test_metrics_are_served_to_an_address_inside_an_allowed_network(settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert Client(REMOTE_ADDR="10.4.5.6").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403


def test_metrics_are_served_anywhere_with_the_bearer_token_and_refused_with_a_wrong_one(settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    outside = Client(REMOTE_ADDR="203.0.113.7")

    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-wrong").status_code == 403
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-token-0123456789").status_code == 403
    assert outside.get("/metrics").status_code == 403


def test_metrics_are_served_for_a_host_header_allowed_hosts_does_not_list():
    """Prometheus scrapes each web process by its address."""
    assert Client().get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 200


@requires_redis()
async def test_a_client_s_own_close_code_is_counted_as_other_so_clients_cannot_add_series():
    before = await ascrape()

    communicator, _ = await open_socket(await sync_to_async(UserFactory)())
    await communicator.disconnect(code=4321)
    after = await ascrape()

    assert value(after, "shop_ws_closes_total", code="other") == value(before, "shop_ws_closes_total", code="other") + 1
    assert ("shop_ws_closes_total", (("code", "4321"),)) not in after
