"""Every Prometheus metric the shop exports, in one place (what each means, and the alerts: docs/operations.md).

The hot paths only increment: a socket's open and close, a publish's count and latency. Nothing here reads
the database per frame; the outbox's backlog is read once per scrape, by `OutboxCollector`.
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notifications.models import Notification
from notifications.selectors import unpublished_backlog

logger = logging.getLogger(__name__)

# Web process: its sockets (one process per scrape target, docs/operations.md says why).
ws_connections = Gauge("shop_ws_connections", "WebSocket connections open in this process.")
ws_handshakes = Counter(
    "shop_ws_handshakes_total",
    "WebSocket handshakes by outcome: accepted (hello sent), refused (HTTP 403), unauthenticated, "
    "session_ended, unavailable (the channel layer was down), error, abandoned (the client left first).",
    ["outcome"],
)
ws_closes = Counter(
    "shop_ws_closes_total",
    "Accepted WebSocket connections closed, by close code: the server's when it closed first, else the client's.",
    ["code"],
)

# Web process: how late its one event loop runs a timer (shop/loop_lag.py); a stall holds every socket's frames.
event_loop_lag = Histogram(
    "shop_event_loop_lag_seconds",
    "How much later than due this web process's event loop ran a timer due every 10 ms.",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
gc_pause = Histogram(
    "shop_gc_pause_seconds",
    "This web process's garbage collections, by the oldest generation each walked (0, 1, or 2: the whole heap).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# Any process that publishes: web (after a change's commit) and Celery workers (tasks' changes, the sweeper).
notifications_published = Counter(
    "shop_notifications_published_total",
    "Notifications sent to the channel layer, by the path that sent them: commit, batch or sweeper.",
    ["path"],
)
notification_publish_failures = Counter(
    "shop_notification_publish_failures_total",
    "Notifications a publish tried and could not send (left to the sweeper, or counted against the row).",
)
notification_commit_to_publish = Histogram(
    "shop_notification_commit_to_publish_seconds",
    "From a notification's creation (in the change's transaction) to its send to the channel layer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

notification_commit_to_delivered = Histogram(
    "shop_notification_commit_to_delivered_seconds",
    "From a notification's creation to the first receipt of a page that showed it (an `ack`, written in a batch).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)

# How a handshake the consumer ended before `hello` is named, by its close code (notifications/consumers.py).
HANDSHAKE_CLOSE_OUTCOMES = {4401: "unauthenticated", 4403: "session_ended", 4013: "unavailable", 4011: "error"}


def notifications_published_count(*, path: str, notifications: Iterable[Notification]) -> None:
    """Count notifications just sent by `path`, and how long each waited since it was created."""
    now = timezone.now()
    count = 0
    for notification in notifications:
        notification_commit_to_publish.observe(max(0.0, (now - notification.created_at).total_seconds()))
        count += 1
    if count:
        notifications_published.labels(path=path).inc(count)


def notifications_delivered_count(*, created: Iterable, delivered_at) -> None:
    """Observe how long each notification a batch of receipts just marked delivered waited since its creation."""
    for created_at in created:
        notification_commit_to_delivered.observe(max(0.0, (delivered_at - created_at).total_seconds()))


class OutboxCollector(Collector):
    """The outbox's backlog, read from the database when scraped: one indexed query per scrape."""

    def describe(self):
        return self._families(count=None, oldest_seconds=None)  # so registering reads nothing

    def collect(self):
        try:
            backlog = unpublished_backlog()
        except DatabaseError:
            # The database is down: the scrape still answers, /readyz says why, and the series show a gap.
            logger.warning("Reading the outbox backlog for /metrics failed", exc_info=True)
            return []
        oldest = 0.0 if backlog.oldest is None else max(0.0, (timezone.now() - backlog.oldest).total_seconds())
        return self._families(count=backlog.count, oldest_seconds=oldest)

    @staticmethod
    def _families(*, count, oldest_seconds):
        return [
            GaugeMetricFamily(
                "shop_notifications_unpublished",
                "Notifications committed but not yet published (quarantined ones excluded).",
                value=count,
            ),
            GaugeMetricFamily(
                "shop_notifications_oldest_unpublished_seconds",
                "Age of the oldest notification committed but not yet published; 0 when none is waiting.",
                value=oldest_seconds,
            ),
        ]


# Registered with the default registry, which each web process serves at /metrics (shop/monitoring.py).
REGISTRY.register(OutboxCollector())

for _generation in ("0", "1", "2"):
    gc_pause.labels(generation=_generation)

for _path in ("commit", "batch", "sweeper"):
    notifications_published.labels(path=_path)  # every path shows from the first scrape, at 0
