"""Drives the bench's helper processes from its main process.

The load generators (bench/loadgen.py) hold the sockets; the triggers (bench/trigger.py) change orders.
"""

import json
import subprocess
import sys
import time

from bench.stack import ROOT, WORKER_NICENESS, lower_priority


class _Helpers:
    """`count` processes running `module`, driven over stdin/stdout with one JSON object per line."""

    def __init__(self, module: str, count: int, env: dict[str, str] | None = None, niceness: int = 0):
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
        for process in self.processes:
            lower_priority(process.pid, niceness)

    def _ask_each(self, commands: list[dict]) -> list[dict]:
        # Send every command first, then read: the processes work in parallel.
        self._send_each(commands)
        return self._read_each()

    def _send_each(self, commands: list[dict]) -> None:
        for process, command in zip(self.processes, commands, strict=True):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()

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

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Ask each process to exit, and kill the ones that do not within a minute; never raises."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                    process.stdin.flush()
                except OSError:  # it died meanwhile (BrokenPipeError): nothing to ask
                    pass
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
        self.holder: dict[int, int] = {}  # user_id -> the index of the generator holding its socket

    def connect(self, clients: list[list], concurrency: int) -> list[dict]:
        """Open `clients` ([user_id, session_key, ws_url, origin, staff?]) spread over the generators."""
        shares = [clients[i :: len(self.processes)] for i in range(len(self.processes))]
        for index, share in enumerate(shares):
            self.holder.update((client[0], index) for client in share)
        return self._ask_each([{"cmd": "connect", "clients": share, "concurrency": concurrency} for share in shares])

    def _by_holder(self, rows: list[list], user_column: int) -> list[list[list]]:
        shares: list[list[list]] = [[] for _ in self.processes]
        for row in rows:
            shares[self.holder[row[user_column]]].append(row)
        return shares

    def chat_open(self, watches: list[list]) -> dict:
        """Each [user_id, order_id]: that user's socket watches that conversation (`chat.open`); opened, errors."""
        replies = self._ask_each([{"cmd": "chat_open", "watches": share} for share in self._by_holder(watches, 0)])
        errors: dict[str, int] = {}
        for reply in replies:
            for code, count in reply["errors"].items():
                errors[code] = errors.get(code, 0) + count
        return {"opened": sum(reply["opened"] for reply in replies), "errors": errors}

    def chat_run(self, sends: list[list]) -> None:
        """Each [due_at, user_id, order_id, client_id] is sent by that user's socket when due, in the background."""
        self._ask_each([{"cmd": "chat_run", "sends": share} for share in self._by_holder(sends, 1)])

    def chat_collect(self) -> dict:
        """The chat frames every generator saw since the last collect, together (bench/loadgen.py, chat_collect)."""
        total: dict = {"sends": [], "acks": [], "received": [], "errors": {}, "late": 0, "running": False}
        for reply in self.ask_all({"cmd": "chat_collect"}):
            for key in ("sends", "acks", "received"):
                total[key] += reply[key]
            for code, count in reply["errors"].items():
                total["errors"][code] = total["errors"].get(code, 0) + count
            total["late"] += reply["late"]
            total["running"] = total["running"] or reply["running"]
        return total

    def reconnect_to(self, servers: list) -> None:
        """From now on a socket the server drops comes back as the page's would, to `servers` in turn."""
        self.ask_all({"cmd": "reconnect_to", "targets": [[server.ws_url, server.base_url] for server in servers]})

    def stats(self) -> dict:
        """Every generator's stats, summed: sockets open, reconnects, churn, staff's order news, failures and close
        codes by kind."""
        total: dict = {"open": 0, "reconnects": 0, "reconnecting": 0, "churned": 0, "resets": 0, "staff_news": 0,
                       "reconnect_failures": {}, "close_codes": {}}  # fmt: skip
        for reply in self.ask_all({"cmd": "stats"}):
            for key in ("open", "reconnects", "reconnecting", "churned", "resets", "staff_news"):
                total[key] += reply[key]
            for key in ("reconnect_failures", "close_codes"):
                for kind, count in reply[key].items():
                    total[key][kind] = total[key].get(kind, 0) + count
        return total

    def churn(self, rate: float) -> None:
        """From now on `rate` sockets a second in all close as tabs do and come back (`reconnect_to`); 0 stops it."""
        self.ask_all({"cmd": "churn", "rate": rate / len(self.processes)})

    def acks(self, on: bool) -> None:
        """From now on every client acknowledges each notification as the page does (`on`), or none does."""
        self.ask_all({"cmd": "acks", "on": on})

    def ack_stats(self) -> tuple[int, int]:
        """Acks sent so far, and clients still within the interval after one (another may follow)."""
        replies = self.ask_all({"cmd": "stats"})
        return sum(reply["acks_sent"] for reply in replies), sum(reply["acks_pending"] for reply in replies)

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
    """`count` trigger processes with the servers' environment `env`, each changing its own share of the orders.

    They stand in for the shop's publishers (Celery workers), so they run at the workers' priority unless told
    otherwise (`niceness`).
    """

    LEAD = 0.2  # seconds from sending the schedules to the first change: every trigger has its own by then

    def __init__(self, count: int, env: dict[str, str], niceness: int = WORKER_NICENESS):
        if count < 1:
            raise ValueError("at least one trigger")
        super().__init__("bench.trigger", count, env, niceness=niceness)
        self.niceness = niceness
        try:
            self._read_each()  # each is ready once Django is set up
        except BaseException:
            self.close()
            raise

    def start(self, order_ids: list[int], *, rate: float, count: int, pattern: str = "shop") -> float:
        """Send each trigger its share of the schedule (`trigger_schedules`); returns when the first change is due.

        `pattern`: how the triggers change an order (bench/trigger.py: `order_transition`, or the textbook's).
        """
        start_at = time.time() + self.LEAD
        triggers = len(self.processes)
        schedules = trigger_schedules(order_ids, rate=rate, count=count, triggers=triggers, start_at=start_at)
        self._send_each([{"cmd": "run", **schedule, "pattern": pattern} for schedule in schedules])
        return start_at

    def results(self) -> list[dict]:
        """Each trigger's reply once it has made all its changes (bench/trigger.py)."""
        return self._read_each()


def trigger_schedules(order_ids: list[int], *, rate: float, count: int, triggers: int, start_at: float) -> list[dict]:
    """Split `count` changes at `rate` per second from `start_at` over `triggers` processes.

    Change i is due at start_at + i / rate and goes to trigger i mod `triggers`, which changes only its
    own orders (every `triggers`-th one), so no two triggers ever wait on one order's lock.
    """
    if len(order_ids) < triggers:
        raise ValueError(f"{triggers} triggers need at least as many orders, got {len(order_ids)}")
    return [
        {
            "order_ids": order_ids[t::triggers],
            "rate": rate / triggers,
            "count": len(range(t, count, triggers)),
            "start_at": start_at + t / rate,
        }
        for t in range(triggers)
    ]
