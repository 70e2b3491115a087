"""Drives the bench's helper processes from its main process: load generators (bench/loadgen.py) and triggers (bench/trigger.py)."""

import json
import subprocess
import sys
import time

from bench.stack import ROOT


class _Helpers:
    """`count` processes running `module`, driven over stdin/stdout with one JSON object per line."""

    def __init__(self, module: str, count: int, env: dict[str, str] | None = None):
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            for _ in range(count)
        ]

    def _ask_each(self, commands: list[dict]) -> list[dict]:
        # Send every command first, then read: the processes work in parallel.
        for process, command in zip(self.processes, commands, strict=True):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        return self._read_each()

    def _read_each(self) -> list[dict]:
        replies = []
        for process in self.processes:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"bench helper {process.pid} exited with {process.wait()}")
            replies.append(json.loads(line))
        return replies

    def ask_all(self, command: dict) -> list[dict]:
        return self._ask_each([command] * len(self.processes))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                process.stdin.flush()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Generators(_Helpers):
    """`count` load-generator processes; client i of a command goes to generator i % count."""

    def __init__(self, count: int):
        super().__init__("bench.loadgen", count)

    def connect(self, clients: list[list], concurrency: int) -> list[dict]:
        """Open `clients` ([user_id, session_key, ws_url, origin]) spread over the generators."""
        shares = [clients[i :: len(self.processes)] for i in range(len(self.processes))]
        return self._ask_each([{"cmd": "connect", "clients": share, "concurrency": concurrency} for share in shares])

    def reconnect_to(self, servers: list) -> None:
        """From now on a socket the server drops comes back as the page's would, to `servers` in turn."""
        self.ask_all({"cmd": "reconnect_to", "targets": [[server.ws_url, server.base_url] for server in servers]})

    def stats(self) -> dict:
        """Every generator's stats, summed: sockets open, reconnects, failures and close codes by kind."""
        total: dict = {"open": 0, "reconnects": 0, "reconnecting": 0, "reconnect_failures": {}, "close_codes": {}}
        for reply in self.ask_all({"cmd": "stats"}):
            for key in ("open", "reconnects", "reconnecting"):
                total[key] += reply[key]
            for key in ("reconnect_failures", "close_codes"):
                for kind, count in reply[key].items():
                    total[key][kind] = total[key].get(kind, 0) + count
        return total

    def open_sockets(self) -> int:
        return self.stats()["open"]

    def cpu_seconds(self) -> float:
        return sum(reply["cpu_seconds"] for reply in self.ask_all({"cmd": "stats"}))

    def collect(self) -> tuple[list[list], list[dict]]:
        """Notification frames received since the last collect, and frames that were not the client's own."""
        received, foreign = [], []
        for reply in self.ask_all({"cmd": "collect"}):
            received += reply["received"]
            foreign += reply["foreign"]
        return received, foreign


class Triggers(_Helpers):
    """`count` trigger processes with the servers' environment `env`, each changing its own share of the orders."""

    def __init__(self, count: int, env: dict[str, str]):
        super().__init__("bench.trigger", count, env)
        self._read_each()  # each is ready once Django is set up

    def run(self, order_ids: list[int], *, rate: float, count: int) -> list[dict]:
        """`count` changes at `rate` per second in all, change i by trigger i % count; each trigger's reply.

        Each trigger changes only its own orders, so no two ever wait on one order's lock.
        """
        triggers = len(self.processes)
        assert len(order_ids) >= triggers, "every trigger needs orders of its own"
        start_at = time.time() + 0.5  # every trigger has its command by then
        commands = [
            {
                "cmd": "run",
                "order_ids": order_ids[t::triggers],
                "rate": rate / triggers,
                "count": len(range(t, count, triggers)),
                "start_at": start_at + t / rate,
            }
            for t in range(triggers)
        ]
        return self._ask_each(commands)
