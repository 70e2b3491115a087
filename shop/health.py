"""Liveness (/healthz) and readiness (/readyz) for load balancers and orchestrators (docs/operations.md).

Readiness runs django-health-check's checks (the database, each Redis of the channel layer) and the shop's own
where it has none (the Celery broker, the outbox's backlog), only for what this deployment has: embedded mode
(no Redis) checks the database and the outbox. A failure names the check, never an address or password.
"""

import asyncio
import dataclasses
import datetime

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from redis.asyncio import Redis as RedisClient

from notifications.selectors import unpublished_backlog
from shop.monitoring import metrics_view
from shop.redis_config import redis_pool

CHECK_TIMEOUT = datetime.timedelta(seconds=3)  # under a probe's usual timeout, so a hung check reports as one


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The Celery broker accepts a connection (the workers' health is theirs: a web process needs only the broker)."""

    timeout: datetime.timedelta = dataclasses.field(default=CHECK_TIMEOUT, repr=False)

    def run(self):
        from celery_app import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=self.timeout.total_seconds())
        except Exception as error:  # kombu wraps each transport's own errors differently
            raise ServiceUnavailable(f"Unable to reach the Celery broker: {type(error).__name__}") from None


@dataclasses.dataclass
class OutboxBacklog(HealthCheck):
    """Notifications left unpublished past the sweeper's delay are at most READYZ_MAX_UNPUBLISHED."""

    def run(self):
        try:
            backlog = unpublished_backlog(older_than=datetime.timedelta(seconds=settings.NOTIFICATION_REPUBLISH_AFTER))
        finally:
            connection.close()  # this runs on an executor's thread: give its connection back, not keep one per thread
        if backlog.count > settings.READYZ_MAX_UNPUBLISHED:
            raise ServiceUnavailable(
                f"{backlog.count} notifications unpublished for over {settings.NOTIFICATION_REPUBLISH_AFTER} s "
                f"(more than {settings.READYZ_MAX_UNPUBLISHED})"
            )


def readiness_checks() -> dict[str, HealthCheck]:
    """The checks /readyz runs, by the name its answer gives each."""
    checks = {"database": Database(), "outbox": OutboxBacklog()}
    for check in checks.values():
        check.timeout = CHECK_TIMEOUT  # a class attribute in django-health-check, not a field of these two
    hosts = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts", [])
    for index, host in enumerate(hosts):
        name = "channel_layer" if len(hosts) == 1 else f"channel_layer_{index}"
        checks[name] = Redis(client_factory=_redis_client_factory(host))
    if settings.REDIS:
        checks["celery_broker"] = CeleryBroker()
    return checks


def _redis_client_factory(host: dict):
    timeout = CHECK_TIMEOUT.total_seconds()
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": None}
    return lambda: RedisClient.from_pool(redis_pool(host, **options))


def healthz(request):
    """Liveness: the process answers. No I/O, so a slow database never gets a healthy process restarted."""
    return _never_cached(JsonResponse({"status": "ok"}))


async def readyz(request):
    """Readiness: 200 when every check passes, else 503 naming each failing check."""
    checks = readiness_checks()
    results = await asyncio.gather(*(check.get_result() for check in checks.values()))
    outcomes = dict(zip(checks, results, strict=True))
    answers = {name: "ok" if result.error is None else str(result.error) for name, result in outcomes.items()}
    failing = sorted(name for name, result in outcomes.items() if result.error is not None)
    body = {"status": "unavailable" if failing else "ok", "checks": answers}
    if failing:
        body["failing"] = failing
    return _never_cached(JsonResponse(body, status=503 if failing else 200))


def _never_cached(response):
    add_never_cache_headers(response)
    return response


OPERATIONS_ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


class OperationsEndpoints:
    """Answers /healthz, /readyz and /metrics before any other middleware (first in MIDDLEWARE).

    Why first: load balancers and Prometheus reach a web process by its address, with a Host header that
    ALLOWED_HOSTS does not list (Django answers 400), over plain HTTP (SECURE_SSL_REDIRECT answers 301), and
    with no session or CSRF to speak of. None of these endpoints builds a URL from the Host header, and
    /metrics has its own access control (shop/monitoring.py).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        view = OPERATIONS_ENDPOINTS.get(request.path_info)
        if view is None:
            return self.get_response(request)
        return async_to_sync(view)(request) if iscoroutinefunction(view) else view(request)

    async def _acall(self, request):
        view = OPERATIONS_ENDPOINTS.get(request.path_info)
        if view is None:
            return await self.get_response(request)
        if iscoroutinefunction(view):
            return await view(request)
        if view is healthz:
            return view(request)  # no I/O: no thread needed
        return await sync_to_async(view)(request)
