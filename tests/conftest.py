"""Shared fixtures, and the rule that CI never runs without its real services."""

import os
import shutil

import environ
import pytest
import redis
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connection, connections

from tests.factories import DEFAULT_PASSWORD, ProductFactory, StaffFactory, UserFactory
from tests.redis_server import RedisServer
from tests.smtp_server import SMTPServer

IN_CI = os.environ.get("CI", "").lower() == "true"

# Real daphne and Celery processes for the end-to-end, browser and fault tests.
pytest_plugins = ["tests.live.servers"]


def _redis_reachable() -> bool:
    if not settings.REDIS_URL:
        return False
    try:
        return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        return False


REDIS_AVAILABLE = _redis_reachable()


def pytest_sessionstart(session):
    """Under CI a missing PostgreSQL or Redis fails the run: it is never skipped."""
    if not IN_CI:
        return
    problems = []
    if connection.vendor != "postgresql":
        problems.append(f"DATABASE_URL must point at PostgreSQL under CI (got {connection.vendor}).")
    if not REDIS_AVAILABLE:
        problems.append(f"Redis is not reachable at REDIS_URL={settings.REDIS_URL!r}.")
    if problems:
        pytest.exit("CI=true but a required service is missing: " + " ".join(problems), returncode=1)


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_the_async_tests_thread(django_db_setup):
    """Async tests reach the database through asgiref's one sync thread; close its
    connection before the test database is dropped, or the drop finds it in use."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(autouse=True)
def _login_limits_forgotten():
    """Each test starts with no failed login counted (accounts/login_limits.py), in Redis or in memory."""
    yield
    if REDIS_AVAILABLE or not settings.REDIS_URL:
        from accounts.login_limits import login_limits_reset

        login_limits_reset()


def requires_postgres():
    return pytest.mark.skipif(
        connection.vendor != "postgresql" and not IN_CI, reason="needs PostgreSQL (set DATABASE_URL)"
    )


def requires_redis():
    return pytest.mark.skipif(not REDIS_AVAILABLE and not IN_CI, reason="needs Redis (set REDIS_URL)")


def requires_redis_sentinel():
    """Debian's redis-server and redis-sentinel, to start servers and sentinels of the test's own."""
    missing = not (shutil.which("redis-server") and shutil.which("redis-sentinel"))
    return pytest.mark.skipif(missing and not IN_CI, reason="needs redis-server and redis-sentinel (apt-get install)")


@pytest.fixture
def redis_shards(tmp_path) -> list[RedisServer]:
    """Two private redis-servers to shard the channel layer over (CHANNEL_LAYER_REDIS_URLS); tests may kill them."""
    shards = []
    for index in range(2):
        (tmp_path / f"shard-{index}").mkdir()
        shards.append(RedisServer(tmp_path / f"shard-{index}"))
    try:
        for shard in shards:
            shard.start()
        yield shards
    finally:
        for shard in shards:
            shard.stop()


@pytest.fixture
def smtp(settings):
    """A real SMTP server on loopback (tests/smtp_server.py) that Django's email goes to, as EMAIL_URL sets it."""
    server = SMTPServer().start()
    for name, value in environ.Env.email_url_config(f"smtp://127.0.0.1:{server.port}").items():
        setattr(settings, name, value)
    yield server
    server.stop()


@pytest.fixture
def password():
    return DEFAULT_PASSWORD


@pytest.fixture
def customer(db):
    return UserFactory()


@pytest.fixture
def other_customer(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def product(db):
    return ProductFactory()


@pytest.fixture
def customer_client(client, customer):
    client.force_login(customer)
    return client


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def push_service():
    """A push service on 127.0.0.1 that records what it receives (tests/notifications/push_service.py)."""
    from tests.notifications.push_service import LocalPushService

    service = LocalPushService().start()
    yield service
    service.stop()
