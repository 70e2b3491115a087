"""Serving the metrics (defined in notifications/metrics.py): the web process's /metrics and a Celery worker's port.

Neither is public: a scrape is answered only from METRICS_ALLOWED_NETWORKS or with the bearer METRICS_TOKEN
(docs/operations.md, "Metrics": why each web process is its own scrape target and a worker serves its pool).
prometheus-client is imported inside the functions: a worker must set its multiprocess directory before that.
"""

import hmac
import ipaddress
import logging
import os
import shutil
import socketserver
import tempfile
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpResponseForbidden

from shop.proxy import proxy_networks_parse

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_access_allowed(*, client_address: str | None, authorization: str | None) -> bool:
    """Whether a scrape from `client_address` with this Authorization header may read the metrics."""
    token = settings.METRICS_TOKEN
    if token and authorization is not None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address((client_address or "").strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in proxy_networks_parse(entries=settings.METRICS_ALLOWED_NETWORKS))


def metrics_view(request):
    """This process's metrics in the Prometheus text format, for allowed scrapers only (403 otherwise)."""
    if not metrics_access_allowed(
        client_address=request.META.get("REMOTE_ADDR"), authorization=request.headers.get("Authorization")
    ):
        return HttpResponseForbidden("Forbidden\n", content_type="text/plain")
    from prometheus_client.django import PrometheusDjangoView

    return PrometheusDjangoView.as_view()(request)


# --- A Celery worker's metrics ------------------------------------------------------------------------------


def worker_metrics_directory_prepare() -> str | None:
    """Before the worker imports anything that counts: give its pool a fresh multiprocess directory.

    prometheus-client reads PROMETHEUS_MULTIPROC_DIR when it is imported, and the pool's processes inherit it,
    so this runs before Django is set up in the worker (celery_app.py). Off (None) without CELERY_METRICS_PORT.
    """
    if not settings.CELERY_METRICS_PORT:
        return None
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        # Left from an earlier run of this worker: its counts would be added to this one's.
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
    else:
        directory = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="shop-worker-metrics-")
    return directory


def worker_metrics_serve() -> int | None:
    """Serve the worker's pool's metrics on CELERY_METRICS_HOST:CELERY_METRICS_PORT; returns the port."""
    port = settings.CELERY_METRICS_PORT
    if not port or not os.environ.get(MULTIPROC_ENV):
        return None
    from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if not metrics_access_allowed(
            client_address=environ.get("REMOTE_ADDR"), authorization=environ.get("HTTP_AUTHORIZATION")
        ):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"Forbidden\n"]
        return metrics_app(environ, start_response)

    server = make_server(
        settings.CELERY_METRICS_HOST, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("Serving the worker's metrics on %s:%s", settings.CELERY_METRICS_HOST, server.server_port)
    return server.server_port


def worker_process_metrics_end(pid: int) -> None:
    """A pool process exited: drop its live gauges from the worker's totals (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass  # a scrape every few seconds is not news
