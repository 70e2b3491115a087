"""Live servers for end-to-end, browser and fault tests: real daphne and Celery processes.

Registered once for the whole suite (`pytest_plugins` in tests/conftest.py), so every
package that uses them shares one set of session processes.

The servers run the production settings (DEBUG off) against this test run's own
database and Redis: `DATABASE_URL` names the test database pytest-django created,
`CHANNEL_LAYER_PREFIX` is this process's layer prefix (so the test process, the web
server and the worker publish to and listen on the same groups) and `CELERY_QUEUE` is
unique to the run (so no other worker on the same Redis takes our tasks).

The processes live for the whole session. `live_db` (transaction=True) commits every
test's data (the servers see it through their own connections) and truncates the
tables after each test; the servers only ever hold a connection for one request or
one task, so that truncation never waits on them.

Two things differ from a deployment, both forced by the test process rather than by
the servers: the web server collects static files into a temporary folder
(`STATIC_ROOT`), and users get a password hash the production hashers accept
(tests.settings hashes with MD5, which shop.settings would refuse).

Every wait is event-driven or a poll with a deadline. Each process's output goes to a
file; when a test fails, the part written during that test is attached to its report.
"""

import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import global_settings, settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils.module_loading import import_string

import shop.settings as production_settings
from bench.stack import stop_process
from shop.celery_broker import broker_is_rabbitmq
from tests.factories import DEFAULT_PASSWORD, StaffFactory, UserFactory
from tests.live.clients import Browser, SocketOpener
from tests.rabbitmq_server import amqp_queue_delete

ROOT = Path(__file__).resolve().parents[2]

# Generous ceilings for a loaded CI machine; a healthy start takes a second or two.
START_DEADLINE = 60.0
STOP_DEADLINE = 10.0
IN_THREAD_TIMEOUT = 30.0
POLL_INTERVAL = 0.1
# How much of a process's log a failing test's report shows.
LOG_TAIL_LINES = 300

# Variables the servers may inherit; everything else they get is set explicitly below,
# so neither this process's DATABASE_URL (the non-test database) nor its
# DJANGO_SETTINGS_MODULE (tests.settings) can leak into them.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")

_LOG_OFFSETS = pytest.StashKey[dict]()
# The servers share the test process's SECRET_KEY, so a session the test process creates
# (force_login) is valid on them: fault and load tests open hundreds of sockets that way.
E2E_SECRET_KEY = settings.SECRET_KEY

# The database marker for tests that use the servers. Data must be committed for the
# servers to see it (transaction=True). The servers outlive the tests and cache content
# type ids (the admin log needs them): a plain transactional flush would truncate
# django_content_type and recreate it with new ids, so flush only the shop's own apps.
live_db = pytest.mark.django_db(
    transaction=True,
    available_apps=[
        "accounts",
        "shop",
        "orders",
        "notifications",
        "axes",
        "django.contrib.admin",
        "django.contrib.sessions",
    ],
)


class ManagedProcess:
    """One subprocess whose stdout and stderr go to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def log_tail(self, since: int = 0, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_text(since).splitlines()
        skipped = f"[... {len(text) - lines} earlier lines ...]\n" if len(text) > lines else ""
        return skipped + "\n".join(text[-lines:])

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_running(self) -> None:
        if not self.is_running():
            code = self.process.returncode if self.process else None
            pytest.fail(f"{self.name} is not running (exit code {code}); its log:\n{self.log_tail()}", pytrace=False)

    def wait_for_log(self, pattern: str, deadline: float = START_DEADLINE) -> re.Match:
        """Poll the log until `pattern` appears; fail early if the process exits."""
        regex = re.compile(pattern)
        end = time.monotonic() + deadline
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            self.check_running()
            if time.monotonic() > end:
                pytest.fail(
                    f"{self.name} did not log {pattern!r} within {deadline:.0f}s; its log:\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited by the deadline."""
        if self.process is not None:
            stop_process(self.process, STOP_DEADLINE)


class LoopbackEndpoint:
    """Where to reach something that listens on 127.0.0.1:`port`: a web server, or a proxy in front of one."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/notifications/"


@dataclass
class WebServer(LoopbackEndpoint):
    """A running daphne and where to reach it."""

    process: ManagedProcess
    port: int

    @property
    def pid(self) -> int:
        return self.process.process.pid


@dataclass
class FullStack:
    """daphne on the Redis channel layer, and a Celery worker consuming `queue`, both started with `env`."""

    web: WebServer
    worker: ManagedProcess
    queue: str
    env: dict[str, str]

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self.web.process, self.worker]


# --- Building the servers' environment ----------------------------------------------------


def servers_database_url() -> str:
    """The database this test run uses, as a URL for the servers (NAME is the test database now)."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "the e2e servers need the test database on PostgreSQL"
    user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
    credentials = f"{user}{':' + password if password else ''}@" if user else ""
    host = quote(db["HOST"] or "", safe="")  # a socket folder (/var/run/...) must be quoted
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


def server_env(**overrides: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        DEBUG="false",
        SECRET_KEY=E2E_SECRET_KEY,
        # Production settings, served over plain HTTP on loopback (no TLS proxy here).
        HTTPS="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=servers_database_url(),
        SIMULATE_ORDER_PROGRESS="false",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        # A test's servers stop at its end with their sockets still open: drain them in a second, not five.
        WEB_DRAIN_SECONDS="2",
        # The broker this run tests, as the test process has it: REDIS_URL's Redis, or CELERY_BROKER_URL's RabbitMQ
        # (none in embedded mode: cleared below when the overrides leave no Redis).
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL if broker_is_rabbitmq(settings.CELERY_BROKER_URL) else "",
        # The uploads this test process stores (product images), served by the live servers.
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    env.update(overrides)
    if not env.get("REDIS_URL") and not env.get("REDIS_SENTINELS"):
        env["CELERY_BROKER_URL"] = ""
    return env


def start_web_server(
    name: str,
    env: dict[str, str],
    workdir: Path,
    static_root: Path,
    app: str = "shop.asgi:application",
    launcher: tuple[str, ...] = (),
    port: int = 0,
) -> WebServer:
    """Start daphne serving `app` on a port the OS picks, and wait until it serves the login page.

    `launcher`: a command that runs it (e.g. `prlimit` with its options), which must exec it in its own process.
    `port`: one to take over instead (a deploy's new process, on the port its predecessor stopped listening on).
    """
    env = {
        **env,
        "STATIC_ROOT": str(static_root),
    }
    # As the Procfile runs it, on loopback and a port the OS picks.
    argv = [*launcher, sys.executable, "-m", "shop.web", "--bind", "127.0.0.1", "--port", str(port), app]
    process = ManagedProcess(name, argv, env, workdir / f"{name}.log").start()
    try:
        # Port 0: no race for a "free" port; daphne logs the one it got.
        port = int(process.wait_for_log(r"Listening on TCP address 127\.0\.0\.1:(\d+)").group(1))
        server = WebServer(process, port)
        wait_until_serving(process, server.base_url)
    except BaseException:
        process.stop()
        raise
    return server


def wait_until_serving(process: ManagedProcess, base_url: str) -> None:
    """Poll the login page at `base_url` until it answers 200, while `process` still runs (a server or a proxy)."""
    end = time.monotonic() + START_DEADLINE
    last = "no answer"
    while time.monotonic() < end:
        process.check_running()
        try:
            response = httpx.get(f"{base_url}/accounts/login/", timeout=5)
        except httpx.TransportError as error:
            last = repr(error)
        else:
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        time.sleep(POLL_INTERVAL)
    pytest.fail(
        f"{process.name} did not serve /accounts/login/ within {START_DEADLINE:.0f}s ({last}); "
        f"its log:\n{process.log_tail()}",
        pytrace=False,
    )


def start_worker(
    env: dict[str, str], workdir: Path, queue: str, name: str = "celery-worker", pool: str = "solo"
) -> ManagedProcess:
    argv = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker",
        f"--pool={pool}", "--concurrency=1", "--loglevel=INFO",
        # -Q as well as CELERY_QUEUE: even if the setting were ignored, never consume the shared "shop" queue.
        "-Q", queue,
        "-n", f"{queue}@%h",
        # Nothing to synchronise with: start (and stop) without waiting on other workers.
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    worker = ManagedProcess(name, argv, env, workdir / f"{name}.log").start()
    try:
        worker.wait_for_log(rf"{re.escape(queue)}@\S+ ready\.")
    except BaseException:
        worker.stop()
        raise
    return worker


def delete_queue_keys(redis_url: str, queue: str) -> None:
    """Remove the run's Celery queue (and leftovers like countdown tasks) from Redis."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        keys = [*client.scan_iter(match=f"{queue}*"), *client.scan_iter(match=f"_kombu.binding*.{queue}*")]
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # best effort: a unique name never collides, it only lingers
    finally:
        client.close()


# --- Session fixtures: the processes ---------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def e2e_static_root(e2e_workdir) -> Path:
    """`collectstatic` into a temporary folder, as the Dockerfile does at build time (DEBUG off needs it)."""
    static_root = e2e_workdir / "static"
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        STATIC_ROOT=str(static_root),
        DEBUG="false",
        SECRET_KEY=E2E_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"collectstatic failed:\n{result.stdout}\n{result.stderr}"
    return static_root


@pytest.fixture(scope="session")
def _full_stack(django_db_setup, e2e_workdir, e2e_static_root) -> FullStack:
    assert settings.REDIS_URL, "the full-stack e2e tests need REDIS_URL"
    queue = f"e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = server_env(
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CELERY_QUEUE=queue,
    )
    worker = start_worker(env, e2e_workdir, queue)
    try:
        web = start_web_server("daphne-redis", env, e2e_workdir, e2e_static_root)
    except BaseException:
        worker.stop()
        delete_queue(queue)
        raise
    stack = FullStack(web=web, worker=worker, queue=queue, env=env)
    try:
        yield stack
    finally:
        # Stop the web server first (no new work), then the worker (it restores unacked tasks on exit).
        web.process.stop()
        worker.stop()
        delete_queue(queue)


def delete_queue(queue: str) -> None:
    """Remove the run's Celery queue from this run's broker."""
    if broker_is_rabbitmq(settings.CELERY_BROKER_URL):
        amqp_queue_delete(settings.CELERY_BROKER_URL, queue)
    else:
        delete_queue_keys(settings.REDIS_URL, queue)


@pytest.fixture(scope="session")
def _embedded_server(django_db_setup, e2e_workdir, e2e_static_root) -> WebServer:
    # An empty REDIS_URL is "no Redis" for shop.settings (in-memory layer, eager tasks), and,
    # being set, keeps a developer's .env from switching this server to Redis.
    env = server_env(REDIS_URL="")
    server = start_web_server("daphne-embedded", env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


# --- Function fixtures: what tests use -------------------------------------------------------


def _watch(request, processes: list[ManagedProcess]) -> None:
    """Check the processes are up, and note where their logs are, for the failure report."""
    for process in processes:
        process.check_running()
    offsets = request.node.stash.setdefault(_LOG_OFFSETS, {})
    for process in processes:
        offsets[process] = process.log_size()


@pytest.fixture
def stack(request, _full_stack) -> FullStack:
    """The full stack (daphne on Redis + Celery worker), checked to be running."""
    _watch(request, _full_stack.processes)
    return _full_stack


@pytest.fixture
def embedded_server(request, _embedded_server) -> WebServer:
    """daphne in embedded mode (in-memory channel layer, no Redis), checked to be running."""
    _watch(request, [_embedded_server.process])
    return _embedded_server


@pytest.fixture(scope="session")
def servers_password_hash() -> str:
    """DEFAULT_PASSWORD hashed the way the servers check it.

    tests.settings hashes with MD5 for speed, a hasher shop.settings does not accept,
    so a factory user could never log in to the servers. Hashing with the production
    hasher costs a quarter of a second; it is done once and shared by every user.
    """
    hashers = getattr(production_settings, "PASSWORD_HASHERS", global_settings.PASSWORD_HASHERS)
    hasher = import_string(hashers[0])()
    return hasher.encode(DEFAULT_PASSWORD, hasher.salt())


def in_own_thread(function, /, *args, **kwargs):
    """`function(*args, **kwargs)` in a fresh thread (own DB connection, closed after); its result.

    For changes made while something else owns this thread's event loop (Playwright, an
    async test): the publish inside runs as it would in a server, and no connection is
    left behind to hold up dropping the test database.
    """

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=IN_THREAD_TIMEOUT)


def with_servers_password(user, password_hash: str):
    # A plain UPDATE: no signals, and no socket-closing "password changed" save.
    get_user_model().objects.filter(pk=user.pk).update(password=password_hash)
    user.password = password_hash
    return user


@pytest.fixture
def live_customer(db, servers_password_hash):
    """A customer who can log in to the servers with DEFAULT_PASSWORD."""
    return with_servers_password(UserFactory(), servers_password_hash)


@pytest.fixture
def live_staff(db, servers_password_hash):
    """A staff member (superuser) who can log in to the servers' admin with DEFAULT_PASSWORD."""
    return with_servers_password(StaffFactory(), servers_password_hash)


@pytest.fixture
async def open_browser():
    """`await open_browser(server)`: an HTTP client with its own cookies (one browser, one session)."""
    browsers: list[Browser] = []

    async def open_(server: WebServer) -> Browser:
        browser = Browser(server.base_url)
        browsers.append(browser)
        return browser

    yield open_
    for browser in browsers:
        await browser.aclose()


@pytest.fixture
async def open_socket():
    """`await open_socket(server, browser=None, after=None, origin=...)`: a notifications WebSocket."""
    opener = SocketOpener()
    yield opener
    await opener.aclose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach what the servers logged during a failed test to its report."""
    report = yield
    offsets = item.stash.get(_LOG_OFFSETS, None)
    if report.failed and offsets:
        for process, offset in offsets.items():
            text = process.log_tail(since=offset) or "(nothing logged)"
            report.sections.append((f"{process.name} log during this test", text))
    return report
