"""Fault tests: real daphne, Celery worker and beat processes on a private Redis that tests may stop.

Each test gets its own processes (they are killed on purpose) and its own redis-server (or, for
failover, its own primary, replica and sentinels), so stopping Redis never disturbs anything else.
The test process publishes to that same Redis, with the same key prefix as the servers.

The Celery broker is that Redis, or RabbitMQ when this run's CELERY_BROKER_URL names one (amqp://, as
`.ci/run`'s second pass sets it): the RabbitMQ it names, on a queue of the cluster's own, or a private
rabbitmq-server for the tests that stop it (`private_rabbitmq`).
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections

from shop.celery_broker import broker_is_rabbitmq
from shop.channel_layers import channel_layers_config
from shop.redis_config import celery_broker
from tests.live.nginx import Proxy, start_nginx
from tests.live.servers import (
    ROOT,
    ManagedProcess,
    WebServer,
    server_env,
    start_web_server,
    start_worker,
    with_servers_password,
)
from tests.postgres_server import PostgresServer
from tests.rabbitmq_server import RabbitMQServer, amqp_queue_delete
from tests.redis_server import RedisServer, SentinelGroup

RESULTS = ROOT / "test-artifacts" / "reliability"
LAYER_PREFIX = "faults"
# The broker this run tests, as CELERY_BROKER_URL chose it ("redis" or "rabbitmq"); CHANNEL_LAYER_BACKEND: the layer.
BROKER = "rabbitmq" if broker_is_rabbitmq(settings.CELERY_BROKER_URL) else "redis"


@pytest.fixture
def private_redis(tmp_path) -> RedisServer:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def sentinel_group(tmp_path) -> SentinelGroup:
    """A private primary, its replica and three sentinels that fail it over within seconds."""
    group = SentinelGroup(tmp_path / "redis")
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def private_rabbitmq(tmp_path) -> RabbitMQServer:
    """A rabbitmq-server of the test's own, which it may stop and start (its data kept, as a real restart)."""
    server = RabbitMQServer(tmp_path / "rabbitmq").start()
    yield server
    server.destroy()


class Cluster:
    """Starts shop processes against the private Redis (a RedisServer or a SentinelGroup); stops what is left.

    `rabbitmq_url`: the Celery broker, if this run tests RabbitMQ (else the private Redis is the broker too).
    """

    def __init__(self, redis: RedisServer | SentinelGroup, workdir: Path, static_root: Path, rabbitmq_url: str = ""):
        self.redis = redis
        self.rabbitmq_url = rabbitmq_url
        self.workdir = workdir
        self.static_root = static_root
        self.queue = f"faults-{uuid.uuid4().hex[:8]}"
        self.processes: list[ManagedProcess] = []
        self.env = server_env(
            **redis.shop_env(),
            CELERY_BROKER_URL=rabbitmq_url,
            CHANNEL_LAYER_PREFIX=LAYER_PREFIX,
            CHANNEL_LAYER_BACKEND=settings.CHANNEL_LAYER_BACKEND,  # the layer this run tests (env)
            CELERY_QUEUE=self.queue,
            # Quick sweeps and quick redelivery, so the tests take seconds rather than minutes.
            NOTIFICATION_REPUBLISH_AFTER="1",
            CELERY_VISIBILITY_TIMEOUT="3",
        )

    def web(
        self, name: str = "daphne", settings_module: str | None = None, extra_env: dict | None = None, port: int = 0
    ) -> WebServer:
        env = {
            **self.env,
            **({"DJANGO_SETTINGS_MODULE": settings_module} if settings_module else {}),
            **(extra_env or {}),
        }
        server = start_web_server(f"{name}-{len(self.processes)}", env, self.workdir, self.static_root, port=port)
        self.processes.append(server.process)
        return server

    def worker(
        self, settings_module: str | None = None, extra_env: dict | None = None, pool: str = "solo"
    ) -> ManagedProcess:
        env = {
            **self.env,
            # The tests read the worker's per-task lines ("Task … succeeded"), which only DEBUG logs (shop/logs.py).
            "LOG_LEVEL": "DEBUG",
            **({"DJANGO_SETTINGS_MODULE": settings_module} if settings_module else {}),
            **(extra_env or {}),
        }
        worker = start_worker(env, self.workdir, self.queue, name=f"celery-worker-{len(self.processes)}", pool=pool)
        self.processes.append(worker)
        return worker

    def beat(self) -> ManagedProcess:
        argv = [sys.executable, "-m", "celery", "-A", "celery_app", "beat", "--loglevel=INFO",
                "--schedule", str(self.workdir / f"beat-{len(self.processes)}")]  # fmt: skip
        # DEBUG: "beat: Starting" is one of beat's INFO lines, logged only at DEBUG (shop/logs.py).
        env = {**self.env, "LOG_LEVEL": "DEBUG"}
        beat = ManagedProcess("celery-beat", argv, env, self.workdir / "celery-beat.log").start()
        beat.wait_for_log(r"beat: Starting")
        self.processes.append(beat)
        return beat

    def nginx(self, webs: list[WebServer]) -> Proxy:
        """The shipped nginx in front of `webs` (tests/live/nginx.py), stopped first with the rest."""
        proxy = start_nginx(webs, self.workdir)
        self.processes.append(proxy.process)
        return proxy

    @property
    def broker_url(self) -> str:
        return self.rabbitmq_url or celery_broker(self.redis.location)[0]

    def send_task(self, name: str, *args) -> None:
        """Queue a task on this cluster's broker (the private Redis, or RabbitMQ), for its workers."""
        from celery_app import app

        if self.rabbitmq_url:
            url, transport_options = self.rabbitmq_url, settings.CELERY_BROKER_TRANSPORT_OPTIONS
        else:
            url, transport_options = celery_broker(self.redis.location)
        with app.connection_for_write(url, transport_options=transport_options) as connection:
            app.send_task(name, args=args, queue=self.queue, connection=connection)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.rabbitmq_url:
            amqp_queue_delete(self.rabbitmq_url, self.queue)  # durable: it would outlive the run


def _cluster(redis: RedisServer | SentinelGroup, tmp_path, static_root, settings, rabbitmq_url: str = ""):
    # The servers' own layer settings: a sender enforces the layer's capacity, so a test process
    # with channels_redis's defaults (capacity 100) would drop what the servers would deliver.
    settings.CHANNEL_LAYERS = channel_layers_config(redis.location, settings.CHANNEL_LAYER_BACKEND, LAYER_PREFIX)
    cluster = Cluster(redis, tmp_path, static_root, rabbitmq_url=rabbitmq_url)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(private_redis, tmp_path, e2e_static_root, django_db_setup, settings) -> Cluster:
    """Processes on the private Redis (and this run's RabbitMQ, if it tests that broker); the test process too."""
    rabbitmq_url = settings.CELERY_BROKER_URL if BROKER == "rabbitmq" else ""
    yield from _cluster(private_redis, tmp_path, e2e_static_root, settings, rabbitmq_url=rabbitmq_url)


@pytest.fixture
def rabbitmq_cluster(private_redis, private_rabbitmq, tmp_path, e2e_static_root, django_db_setup, settings) -> Cluster:
    """Processes on the private Redis with the private RabbitMQ as their broker, which the test may restart."""
    yield from _cluster(private_redis, tmp_path, e2e_static_root, settings, rabbitmq_url=private_rabbitmq.url)


@pytest.fixture
def sentinel_cluster(sentinel_group, tmp_path, e2e_static_root, django_db_setup, settings) -> Cluster:
    """Processes that find their Redis through the private sentinels; the test process too."""
    yield from _cluster(sentinel_group, tmp_path, e2e_static_root, settings)


PRIVATE_DATABASE = "shop_faults"


@pytest.fixture
def private_postgres(tmp_path, django_db_setup) -> PostgresServer:
    """A private PostgreSQL server with a migrated database, which tests may stop and restart.

    While the test runs, the test process uses it too: the default connection's settings dict is
    repointed in place (every thread's connection is built from that same dict, and
    servers_database_url() hands it to the processes a cluster starts), then put back, so the
    shared test database is left as it was. The connection pool, if settings configure one, is
    built once per process from those settings, so it is closed (and rebuilt on next use) at
    both switches. Use `in_thread` for database work, not the async tests' shared thread, whose
    connection may still be open to the shared database.
    """
    server = PostgresServer(tmp_path).init().start()
    server.create_database(PRIVATE_DATABASE)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=server_env(DATABASE_URL=server.url(PRIVATE_DATABASE)), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}"
    db = connection.settings_dict
    saved = {key: db[key] for key in ("HOST", "PORT", "NAME", "USER", "PASSWORD")}
    connections.close_all()
    connection.close_pool()
    db.update(HOST="127.0.0.1", PORT=str(server.port), NAME=PRIVATE_DATABASE, USER="postgres", PASSWORD="")
    ContentType.objects.clear_cache()  # ids differ between the two databases
    try:
        yield server
    finally:
        connections.close_all()
        connection.close_pool()
        db.update(saved)
        ContentType.objects.clear_cache()
        server.destroy()


@pytest.fixture
def postgres_cluster(private_postgres, cluster) -> Cluster:
    """`cluster` whose processes use the private PostgreSQL (it is set up first, so their env names it)."""
    return cluster


@pytest.fixture
def servers_user(servers_password_hash):
    """`servers_user(user)`: the user can now log in to the servers with DEFAULT_PASSWORD."""
    return lambda user: with_servers_password(user, servers_password_hash)


def record(name: str, **figures) -> None:
    """Keep a fault's figures for docs/reliability.md (test-artifacts/reliability/<name>.json)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\n{name}: {json.dumps(figures, default=str)}", file=sys.stderr)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)
