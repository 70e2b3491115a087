"""A private PostgreSQL server for tests that stop and restart PostgreSQL without touching the shared one.

Mirrors tests/redis_server.py: `initdb` once (trust auth, user `postgres`), then `postgres` on its
own port; `stop()` and `start()` again keep the port and the data. The binaries come from Debian's
packages (/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so under root
(this machine's sessions and CI) the server runs as the `postgres` system user, and its data lives
in a folder of its own under the system temp dir: pytest's tmp_path sits in a root-only folder
that user cannot enter.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.redis_server import free_port

START_DEADLINE = 30.0
SUPERUSER = "postgres"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(path.split("/")[4]))
    executable = found[-1] if found else shutil.which(name)
    assert executable, f"PostgreSQL's {name} is not installed (apt-get install postgresql)"
    return executable


class PostgresServer:
    """`postgres` on its own port, with its socket in its own folder; `stop()` is a fast shutdown."""

    def __init__(self, workdir: Path):
        self.log_path = workdir / "postgres.log"
        self.port = free_port()
        self.run_as = pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
        self.data = self.root / "data"
        if self.run_as:
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)
        self.process: subprocess.Popen | None = None

    def _popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        user = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []} if self.run_as else {}
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **user, **kwargs
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> "PostgresServer":
        initdb = self._popen([_bin("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                              "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])  # fmt: skip
        assert initdb.wait(timeout=120) == 0, f"initdb failed; see {self.log_path}"
        return self

    def start(self) -> "PostgresServer":
        self.process = self._popen([
            _bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root),
            # A throwaway server: no fsync makes it write fast. A fast shutdown still writes out every
            # committed transaction, so what clients see of a restart is unchanged.
            "-c", "fsync=off",
        ])  # fmt: skip
        end = time.monotonic() + START_DEADLINE
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > end or self.process.poll() is not None:
                    raise
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open transactions are rolled back and every client is disconnected."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=START_DEADLINE)

    def restart(self) -> "PostgresServer":
        self.stop()
        return self.start()

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
