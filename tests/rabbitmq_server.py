"""A private RabbitMQ node for tests that stop and restart the broker without touching the shared one."""

import os
import socket
import subprocess
from pathlib import Path

from tests.redis_server import free_port, wait_for

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # Debian's; /usr/sbin's wrappers switch to the rabbitmq user
START_DEADLINE = 60.0


class RabbitMQServer:
    """`rabbitmq-server` as a node of its own (own name, ports, data and cookie); `stop()` and `start()` keep them."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.node = f"shoptest{self.port}@localhost"
        self.process: subprocess.Popen | None = None
        (workdir / "home").mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq.conf").write_text("loopback_users = none\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.workdir / "home"),  # the node's Erlang cookie, and the CLI's
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.workdir / "pid"),
        }

    def _ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def _accepting(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def start(self) -> "RabbitMQServer":
        log = open(self.workdir / "server.out", "ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")], env=self._env(), stdout=log, stderr=subprocess.STDOUT
        )
        # The AMQP listener opens last, once the broker has booted.
        wait_for(self._accepting, deadline=START_DEADLINE, what="rabbitmq-server", process=self.process)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self._ctl("stop")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None
