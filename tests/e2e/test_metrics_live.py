"""The metrics as Prometheus scrapes them from real processes: a daphne web process and a prefork Celery worker."""

import time
import uuid

import httpx
import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from celery_app import app as celery_app
from orders.models import OrderStatus
from tests.conftest import requires_postgres, requires_redis
from tests.factories import place_order
from tests.live.clients import receive_hello, receive_notification
from tests.live.servers import delete_queue, live_db, server_env, start_worker
from tests.redis_server import free_port

pytestmark = [pytest.mark.e2e, live_db, requires_postgres(), requires_redis()]

SCRAPE_DEADLINE = 15.0
TOKEN = "worker-scrape-token-0123456789"


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple], float]:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(url: str, condition, **headers: str) -> dict:
    """Scrape until `condition(samples)` holds (a counter moves on after the frame that caused it), or fail."""
    end = time.monotonic() + SCRAPE_DEADLINE
    while True:
        samples = scrape(url, **headers)
        if condition(samples):
            return samples
        assert time.monotonic() < end, "the scrape never showed it"
        time.sleep(0.1)


@pytest.fixture
def order(customer):
    """A pending order of `customer`, committed so the servers see it."""
    return place_order(customer=customer, status=OrderStatus.PENDING_PAYMENT)


async def test_a_web_process_scrape_counts_a_real_socket_its_close_and_a_publish_on_commit(
    stack, open_browser, open_socket, customer, staff, order
):
    url = f"{stack.web.base_url}/metrics"
    before = scrape(url)

    browser = await (await open_browser(stack.web)).login(customer.username)
    socket = await open_socket(stack.web, browser)
    await receive_hello(socket)
    opened = scrape(url)
    staff_browser = await (await open_browser(stack.web)).login(staff.username)
    await staff_browser.admin_change_status(order.pk, OrderStatus.PAID)
    await receive_notification(socket)
    published = scrape_until(
        url,
        lambda samples: (
            value(samples, "shop_notifications_published_total", path="commit")
            > value(before, "shop_notifications_published_total", path="commit")
        ),
    )
    await socket.close(code=1000)
    closed = scrape_until(
        url,
        lambda samples: (
            value(samples, "shop_ws_closes_total", code="1000") > value(before, "shop_ws_closes_total", code="1000")
        ),
    )

    assert value(opened, "shop_ws_connections") == value(before, "shop_ws_connections") + 1
    assert value(opened, "shop_ws_handshakes_total", outcome="accepted") == (
        value(before, "shop_ws_handshakes_total", outcome="accepted") + 1
    )
    assert value(published, "shop_notification_commit_to_publish_seconds_count") > value(
        before, "shop_notification_commit_to_publish_seconds_count"
    )
    assert value(closed, "shop_ws_connections") == value(before, "shop_ws_connections")
    assert value(closed, "shop_notifications_unpublished") == 0


@pytest.fixture
def metered_worker(tmp_path, e2e_workdir):
    """A prefork worker of two pool processes serving their metrics, readable only with TOKEN."""
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = server_env(
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CELERY_QUEUE=queue,
        CELERY_METRICS_PORT=str(port),
        METRICS_ALLOWED_NETWORKS="192.0.2.0/24",  # not loopback: only the token lets the test in
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
    )
    worker = start_worker(env, e2e_workdir, queue, name="celery-worker-metered", pool="prefork")
    try:
        yield f"http://127.0.0.1:{port}/metrics", queue
    finally:
        worker.stop()
        delete_queue(queue)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task is meant to skip eager mode
def test_a_worker_serves_what_its_pool_processes_published_to_the_token_only(metered_worker, customer):
    url, queue = metered_worker
    order = place_order(customer=customer, status=OrderStatus.PAID)
    authorization = {"Authorization": f"Bearer {TOKEN}"}
    before = scrape(url, **authorization)

    celery_app.send_task("orders.tasks.advance_fulfilment", args=[order.pk, "paid"], queue=queue)
    after = scrape_until(
        url,
        lambda samples: (
            value(samples, "shop_notifications_published_total", path="commit")
            == value(before, "shop_notifications_published_total", path="commit") + 1
        ),
        **authorization,
    )

    assert value(after, "shop_notification_commit_to_publish_seconds_count") == (
        value(before, "shop_notification_commit_to_publish_seconds_count") + 1
    )
    assert httpx.get(url, timeout=10).status_code == 403
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403


def test_a_web_process_answers_probes_by_address_and_still_refuses_that_host_elsewhere(stack):
    """A load balancer probes daphne with its address as Host; only the probes and scrapes answer it."""
    host = {"Host": f"10.1.2.3:{stack.web.port}"}

    assert httpx.get(f"{stack.web.base_url}/healthz", headers=host, timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{stack.web.base_url}/readyz", headers=host, timeout=10)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")
    assert set(ready.json()["checks"]) == {"database", "outbox", "channel_layer", "celery_broker"}
    assert httpx.get(f"{stack.web.base_url}/metrics", headers=host, timeout=10).status_code == 200
    assert httpx.get(f"{stack.web.base_url}/accounts/login/", headers=host, timeout=10).status_code == 400
