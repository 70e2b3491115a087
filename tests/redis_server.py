"""A private redis-server for tests that stop and restart Redis without touching the shared one.

`SentinelGroup` is a primary, a replica and three sentinels of the test's own, for failover tests.
"""

import shutil
import socket
import subprocess
import time
from functools import cached_property
from pathlib import Path

import redis

from shop.redis_config import RedisSentinel

START_DEADLINE = 15.0
POLL_INTERVAL = 0.05


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, *, deadline: float, what: str, process: subprocess.Popen | None = None) -> float:
    """Poll `predicate` (errors count as false) until true; seconds it took. Fails after `deadline`."""
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (redis.RedisError, OSError):
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() - start > deadline:
            raise AssertionError(f"{what}: not within {deadline}s")
        time.sleep(POLL_INTERVAL)


class RedisServer:
    """`redis-server` on its own port; `stop()` and `start()` again keep the port.

    `replica_of`: the RedisServer this one replicates (`--replicaof`).
    """

    def __init__(self, workdir: Path, replica_of: "RedisServer | None" = None):
        self.workdir = workdir
        self.port = free_port()
        self.replica_of = replica_of
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def location(self) -> str:
        """The shop's Redis, as shop.redis_config takes it."""
        return self.url

    def shop_env(self) -> dict[str, str]:
        """What points a shop process at this server."""
        return {"REDIS_URL": self.url}

    @cached_property
    def admin(self) -> redis.Redis:
        """The test's own client of this server (it reconnects after a restart)."""
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def start(self) -> "RedisServer":
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed"
        replica = ["--replicaof", "127.0.0.1", str(self.replica_of.port)] if self.replica_of else []
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), *replica],
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
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_DEADLINE)

    def kill(self) -> None:
        """SIGKILL: gone at once, nothing written, no replica told."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_DEADLINE)


class SentinelServer:
    """One sentinel (Debian's `redis-sentinel`) monitoring `primary` as `master`, on its own port and folder."""

    def __init__(self, workdir: Path, primary: RedisServer, master: str, *, quorum: int, down_after_ms: int,
                 failover_timeout_ms: int):  # fmt: skip
        self.workdir = workdir
        self.port = free_port()
        self.master = master
        # A sentinel rewrites its configuration file as it learns: it must be its own, and writable.
        self.config = workdir / f"sentinel-{self.port}.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {master} 127.0.0.1 {primary.port} {quorum}\n"
            f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
            f"sentinel failover-timeout {master} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {master} 1\n"
        )
        self.process: subprocess.Popen | None = None

    @cached_property
    def admin(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def start(self) -> "SentinelServer":
        executable = shutil.which("redis-sentinel")
        assert executable, "redis-sentinel is not installed (apt-get install redis-sentinel)"
        with open(self.workdir / f"sentinel-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen([executable, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.admin.ping(), deadline=START_DEADLINE, what="sentinel start", process=self.process)
        return self

    def primary_port(self) -> int | None:
        """The port of the primary this sentinel names now."""
        address = self.admin.sentinel_get_master_addr_by_name(self.master)
        return int(address[1]) if address else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_DEADLINE)


class SentinelGroup:
    """A primary, a replica of it and three sentinels (quorum 2) on loopback, tuned to fail over in seconds.

    `sentinels=1` (quorum 1) starts faster, for tests that only need the primary found, not a failover.
    """

    MASTER = "shop-faults"

    def __init__(
        self, workdir: Path, *, sentinels: int = 3, down_after_ms: int = 1000, failover_timeout_ms: int = 5000
    ):
        folders = {name: workdir / name for name in ("primary", "replica", "sentinels")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        self.primary = RedisServer(folders["primary"])
        self.replica = RedisServer(folders["replica"], replica_of=self.primary)
        self.sentinels = [
            SentinelServer(folders["sentinels"], self.primary, self.MASTER, quorum=min(2, sentinels),
                           down_after_ms=down_after_ms, failover_timeout_ms=failover_timeout_ms)
            for _ in range(sentinels)
        ]  # fmt: skip

    @property
    def location(self) -> RedisSentinel:
        return RedisSentinel(sentinels=tuple(("127.0.0.1", s.port) for s in self.sentinels), master=self.MASTER)

    def shop_env(self) -> dict[str, str]:
        """What points a shop process at the group: the sentinels, never a server's own address."""
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": self.MASTER,
        }

    def start(self) -> "SentinelGroup":
        """Start them all, and return once every sentinel knows the replica and the other two sentinels."""
        self.primary.start()
        self.replica.start()
        wait_for(
            lambda: self.replica.admin.info("replication")["master_link_status"] == "up",
            deadline=START_DEADLINE, what="replica in sync", process=self.replica.process,
        )  # fmt: skip
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            wait_for(lambda s=sentinel: self._fully_known(s), deadline=START_DEADLINE * 2, what="sentinels agree")
        return self

    def _fully_known(self, sentinel: SentinelServer) -> bool:
        client = sentinel.admin
        replicas = client.sentinel_slaves(self.MASTER)
        return (
            sentinel.primary_port() == self.primary.port
            and [r["port"] for r in replicas if "s_down" not in r["flags"]] == [self.replica.port]
            and len(client.sentinel_sentinels(self.MASTER)) == len(self.sentinels) - 1
        )

    def promoted(self) -> bool:
        """Every sentinel names the replica as the primary, and the replica says it is one."""
        return (
            all(s.primary_port() == self.replica.port for s in self.sentinels)
            and self.replica.admin.info("replication")["role"] == "master"
        )

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()
