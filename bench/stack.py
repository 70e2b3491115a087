"""The processes under test, started the way operators run them: web servers and Celery workers.

Each runs the production settings (DEBUG off) against the bench database and Redis,
with a channel-layer prefix and a Celery queue of its own run, so a bench never
mixes with a shop on the same Redis.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE = 180.0  # a shared, busy machine took over 60 s to start a Celery worker
STOP_DEADLINE = 15.0

# How each ASGI server is started; both serve the same application, the shop's unless told otherwise.
SHOP_APPLICATION = "shop.asgi:application"
SERVER_COMMANDS = {
    # daphne as operators run it (shop/web.py: its listen backlog as deep as uvicorn's, the connect timeout).
    # No access log on either server (-v 0 for daphne, --no-access-log for uvicorn): the bench
    # measures sockets, not log formatting (daphne writes three lines per socket).
    "daphne": ["-m", "shop.web", "--bind", "127.0.0.1", "--port", "{port}", "-v", "0", "{app}"],
    # No per-message compression: browsers offer it and uvicorn would accept it by default,
    # at the cost of a zlib context (tens of KB) per socket for frames of a few hundred bytes.
    # daphne does not negotiate it either, so the two are compared like for like.
    # daphne as above, writing down what it holds on SIGUSR1 (bench/memory.py).
    "daphne-census": ["-m", "bench.memory_probe", "--bind", "127.0.0.1", "--port", "{port}", "-v", "0", "{app}"],
    "uvicorn": [
        "-m", "uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}",
        "--no-access-log", "--lifespan", "off", "--ws", "websockets", "--ws-per-message-deflate", "false",
    ],
    # granian 2 (Rust HTTP and WebSocket, the application on a Python event loop): ASGI without lifespan, one
    # worker, and no cap of its own on the sockets in flight (--backpressure; its default, the backlog, would
    # hold every socket past 2,048 in line: a WebSocket is one request for its whole life).
    "granian": [
        "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
        "--backlog", "2048", "--backpressure", "100000", "--no-access-log", "--log-level", "warning", "{app}",
    ],
}  # fmt: skip
SERVERS = ("daphne", "uvicorn", "granian")  # what the bench compares (the others above are its own probes)
# Servers that serve from a worker process of their own, even with one: the bench measures that worker.
FORKS_ITS_WORKER = {"granian"}


# The Celery workers, and the trigger processes that stand in for them (bench/load.py), run at a lower CPU
# priority than the web servers, as the Procfile runs the worker (`nice -n 10`): where they share cores, a
# web process ready to deliver a frame gets one first. Without it, at 200 changes/s on this box, the web
# process waited for a core ~30 % of the time and p99 rose several-fold (docs/performance.md).
WORKER_NICENESS = 10


def stop_process(popen: subprocess.Popen, deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM, then SIGKILL if it has not exited by the deadline (the test servers stop the same way)."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=deadline)


def cpu_seconds(pid: int) -> float:
    """CPU the process has used so far, user and system."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def cpu_wait_seconds(pid: int) -> float | None:
    """Time the process's main thread (the web server's event loop) has spent ready to run, waiting for a core.

    From Linux's /proc/<pid>/schedstat; None where there is none. What a frame arriving meanwhile waits too.
    """
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def loop_lag_buckets(base_url: str) -> dict[float, float] | None:
    """The web server's `shop_event_loop_lag_seconds` so far, by bucket (cumulative); None if it runs no probe."""
    families = text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=10).text)
    buckets = {
        float(sample.labels["le"]): sample.value
        for family in families
        if family.name == "shop_event_loop_lag_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    # uvicorn serves the same metrics but runs no probe (shop/web.py starts it): nothing observed.
    return buckets if buckets.get(float("inf")) else None


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores: everything the bench shares them with."""
    times = psutil.cpu_times()
    # As psutil.cpu_percent counts: Linux already includes guest time in user time.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def machine_busy_since(reading: tuple[float, float]) -> float | None:
    """How busy the whole machine has been since `reading` (of machine_cpu_seconds), from 0 to 1."""
    busy, total = (now - then for now, then in zip(machine_cpu_seconds(), reading, strict=True))
    return busy / total if total else None


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_bytes(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.popen)


@dataclass
class WebServer(Process):
    port: int = 0
    serving_pid: int | None = None  # the process that serves, where it is not the one started (FORKS_ITS_WORKER)

    @property
    def pid(self) -> int:
        return self.serving_pid or self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/notifications/"


def server_env(
    *, database_url: str, redis_url: str, secret_key: str, static_root: str, run: str, layer: str
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DEBUG": "false",
        "HTTPS": "false",  # plain HTTP on loopback, no TLS proxy in front
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": secret_key,  # the bench's sessions are signed with it
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STATIC_ROOT": static_root,
        "CHANNEL_LAYER_BACKEND": layer,
        "CHANNEL_LAYER_PREFIX": f"bench-{run}",
        "CELERY_QUEUE": f"bench-{run}",
        "SIMULATE_ORDER_PROGRESS": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def _spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, niceness: int = 0, cwd: Path = ROOT
) -> tuple[subprocess.Popen, Path]:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    lower_priority(popen.pid, niceness)
    return popen, log_path


def lower_priority(pid: int, niceness: int) -> None:
    """Lower a just-started process's CPU priority by `niceness`, as `nice -n` does (what it starts inherits it)."""
    if niceness:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(
    kind: str, name: str, env: dict[str, str], log_dir: Path, app: str = SHOP_APPLICATION, cwd: Path = ROOT
) -> WebServer:
    """A web server of the shop in `cwd` (another checkout of it, for an A/B between versions; the same venv)."""
    port = _free_port()
    args = [arg.format(port=port, app=app) for arg in SERVER_COMMANDS[kind]]
    popen, log_path = _spawn(name, args, env, log_dir, cwd=cwd)
    server = WebServer(name, popen, log_path, port)
    end = time.monotonic() + START_DEADLINE
    while True:
        server.check_running()
        try:
            if httpx.get(f"{server.base_url}/accounts/login/", timeout=5).status_code == 200:
                if kind in FORKS_ITS_WORKER:
                    (worker,) = psutil.Process(popen.pid).children()
                    server.serving_pid = worker.pid
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            server.stop()
            raise RuntimeError(f"{name} did not serve within {START_DEADLINE:.0f}s; see {log_path}")
        time.sleep(0.2)


def start_worker(name: str, env: dict[str, str], log_dir: Path) -> Process:
    args = [
        "-m", "celery", "-A", "celery_app", "worker", "--concurrency=2",
        "-Q", env["CELERY_QUEUE"], "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    # The settings' logging governs the worker (shop/logs.py): INFO, so its " ready." line is there to wait for.
    popen, log_path = _spawn(name, args, {**env, "LOG_LEVEL": "INFO"}, log_dir, niceness=WORKER_NICENESS)
    worker = Process(name, popen, log_path)
    end = time.monotonic() + START_DEADLINE
    while " ready." not in log_path.read_text(errors="replace"):
        worker.check_running()
        if time.monotonic() > end:
            worker.stop()
            raise RuntimeError(f"{name} was not ready within {START_DEADLINE:.0f}s; see {log_path}")
        time.sleep(0.2)
    return worker
