"""A private rabbitmq-server (Debian's) for tests that stop and restart the broker without touching the shared one.

Its own node name, ports, data and log folders and Erlang cookie (its own HOME); the machine's epmd is shared, as
every Erlang node on a host shares it. `stop()` then `start()` again keeps the port and the data: durable queues and
their persistent messages survive, as they would a restart of a real broker.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import OperationalError

from tests.redis_server import free_port

# RabbitMQ boots in 3-10 s on a quiet machine; 20-60 s on this shared 2-core one under load.
START_DEADLINE = 120.0
STOP_DEADLINE = 30.0
POLL_INTERVAL = 0.1
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the script itself: /usr/sbin's wrapper would switch user


def rabbitmq_server_installed() -> bool:
    return Path(SERVER).exists() or shutil.which("rabbitmq-server") is not None


def amqp_queue_depth(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`, as a passive declare reports them (unacked messages are not ready)."""
    with Connection(url, connect_timeout=2) as connection:
        channel = connection.channel()
        try:
            _, ready, consumers = channel.queue_declare(queue=queue, passive=True)
        finally:
            channel.close()
    return ready, consumers


def amqp_queue_delete(url: str, queue: str) -> None:
    """Remove a run's queue and its exchange (a unique name never collides; it would only linger)."""
    try:
        with Connection(url, connect_timeout=2) as connection:
            channel = connection.channel()
            channel.queue_delete(queue=queue)
            channel.exchange_delete(exchange=queue)
            channel.close()
    except (OSError, AMQPError, OperationalError):
        pass  # best effort, like tests.live.servers.delete_queue_keys


class RabbitMQServer:
    """`rabbitmq-server` on its own port, with guest/guest allowed from loopback."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"rabbit-test-{self.port}@localhost"
        self.process: subprocess.Popen | None = None
        (self.workdir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")  # not the machine's (/etc/rabbitmq names its node)
        (self.workdir / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        folder = str(self.workdir)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": folder,  # its own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": f"{folder}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia",
            "RABBITMQ_LOG_BASE": f"{folder}/log",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> "RabbitMQServer":
        assert rabbitmq_server_installed(), "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
        executable = SERVER if Path(SERVER).exists() else shutil.which("rabbitmq-server")
        with open(self.workdir / "server.log", "ab") as log:
            # The script execs the Erlang VM, so this process is the broker: SIGTERM stops it cleanly.
            # In its own folder: a node that dies while booting writes its crash dumps where it runs.
            self.process = subprocess.Popen(
                [executable], cwd=self.workdir, env=self._env(), stdout=log, stderr=subprocess.STDOUT
            )
        end = time.monotonic() + START_DEADLINE
        while True:
            try:
                with Connection(self.url, connect_timeout=1) as connection:
                    connection.ensure_connection(max_retries=0)
                return self
            except (OSError, AMQPError, OperationalError):  # refused, reset or handshake cut short while it boots
                if self.process.poll() is not None:
                    raise AssertionError(f"rabbitmq-server exited with {self.process.returncode}") from None
                if time.monotonic() > end:
                    raise AssertionError(f"rabbitmq-server not up within {START_DEADLINE}s") from None
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=STOP_DEADLINE)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "mnesia", ignore_errors=True)
