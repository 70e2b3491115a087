"""Drives the load-generator processes (bench/loadgen.py) from the bench's main process."""

import json
import subprocess
import sys

from bench.stack import ROOT


class Generators:
    """`count` load-generator processes; client i of a command goes to generator i % count."""

    def __init__(self, count: int):
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            for _ in range(count)
        ]

    def _ask_each(self, commands: list[dict]) -> list[dict]:
        # Send every command first, then read: the generators work in parallel.
        for process, command in zip(self.processes, commands, strict=True):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        replies = []
        for process in self.processes:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"load generator {process.pid} exited with {process.wait()}")
            replies.append(json.loads(line))
        return replies

    def ask_all(self, command: dict) -> list[dict]:
        return self._ask_each([command] * len(self.processes))

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
