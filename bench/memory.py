"""What an idle socket holds in the web process, by type (docs/performance.md, "Memory per socket").

    python -m bench.memory [--sockets 1000] [--server daphne]

One web process (bench/memory_probe.py, daphne as `shop.web` runs it), N logged-in customers connected and idle,
a census of its live objects; N more, another: the difference over N is one socket's share, by type (the ASGI
scopes and header lists apart), beside its RSS. It needs the bench's database and Redis (BENCH_DATABASE_URL,
BENCH_REDIS_URL), as `make bench` does, and writes test-artifacts/bench/memory.json.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path

from bench.run import STATIC_ROOT, configure_django, raise_open_files_limit
from bench.stack import ROOT, server_env, start_web

SETTLE = 5.0  # seconds idle after a storm, so handshake garbage is gone before the census
DUMP_DEADLINE = 120.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000, help="N: the censuses are at N and 2N sockets")
    parser.add_argument("--top", type=int, default=30, help="types listed")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench" / "memory.json")
    return parser.parse_args(argv)


def per_socket(before: dict, after: dict, sockets: int) -> list[list]:
    """[kind, objects per socket, bytes per socket] of after − before, largest first."""
    rows = []
    for name in after.keys() | before.keys():
        count_after, size_after = after.get(name, (0, 0))
        count_before, size_before = before.get(name, (0, 0))
        rows.append([name, (count_after - count_before) / sockets, (size_after - size_before) / sockets])
    return sorted(rows, key=lambda row: -row[2])


def census(server, path: str, n: int) -> dict:
    os.kill(server.pid, signal.SIGUSR1)
    end = time.monotonic() + DUMP_DEADLINE
    while not os.path.exists(f"{path}-{n}.json"):
        server.check_running()
        if time.monotonic() > end:
            raise RuntimeError(f"no census from {server.name} within {DUMP_DEADLINE:.0f}s")
        time.sleep(0.5)
    with open(f"{path}-{n}.json") as counts:
        return json.load(counts)


def main(argv=None) -> int:
    args = parse_args(argv)
    raise_open_files_limit(2 * args.sockets)
    secret_key = secrets.token_urlsafe(64)
    database_url, redis_url = configure_django(secret_key)
    from bench import scenarios
    from bench.data import customers_create
    from bench.load import Generators

    log_dir = ROOT / "test-artifacts" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    dump = str(log_dir / f"memory-{uuid.uuid4().hex[:8]}")
    env = server_env(database_url=database_url, redis_url=redis_url, secret_key=secret_key,
                     static_root=str(STATIC_ROOT), run=uuid.uuid4().hex[:8], layer="pubsub")  # fmt: skip
    customers = customers_create(2 * args.sockets, run=uuid.uuid4().hex[:8])
    server = start_web("daphne-census", "memory-daphne", {**env, "BENCH_MEMORY_DUMP": dump}, log_dir)
    try:
        with Generators(2) as generators:
            readings = []
            for n, share in enumerate((customers[: args.sockets], customers[args.sockets :]), start=1):
                scenarios.storm(generators, [server], share, concurrency=16)
                time.sleep(SETTLE)  # idle is what is measured
                held, rss = generators.open_sockets(), server.rss_bytes()
                readings.append((census(server, dump, n), rss, held))
    finally:
        server.stop()
    (before, rss_before, held_before), (after, rss_after, held_after) = readings
    sockets = held_after - held_before  # on a busy machine a few handshakes time out in line: not counted
    rows = per_socket(before, after, sockets)
    report = {
        "sockets": [held_before, held_after],
        "rss_kb_per_socket": (rss_after - rss_before) / sockets / 1024,
        "objects_kb_per_socket": sum(row[2] for row in rows) / 1024,
        "objects_per_socket": sum(row[1] for row in rows),
        "by_type": rows,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"RSS {report['rss_kb_per_socket']:.1f} KB per socket; live objects {report['objects_kb_per_socket']:.1f} KB"
          f" in {report['objects_per_socket']:.0f} objects")  # fmt: skip
    for name, count, size in rows[: args.top]:
        print(f"  {size / 1024:6.2f} KB  {count:6.2f}  {name}")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
