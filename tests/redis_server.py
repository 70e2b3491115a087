"""A private redis-server for tests that stop and restart Redis without touching the shared one."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

START_DEADLINE = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """`redis-server` on its own port; `stop()` and `start()` again keep the port."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        end = time.monotonic() + START_DEADLINE
        while True:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                if time.monotonic() > end or self.process.poll() is not None:
                    raise
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_DEADLINE)

    def kill(self) -> None:
        """A crash: SIGKILL, so Redis says goodbye to no client."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_DEADLINE)
