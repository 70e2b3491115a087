"""`make soak`: one web process under steady churn and changes for half an hour; its memory and Redis must stay flat.

    python -m bench.soak [--minutes 30] [--sockets 2000] [--churn 20] [--changes 50] [--sample-seconds 60] ...

The bench's stack (bench/stack.py: one daphne process and a Celery worker, production settings) on the bench's
database (BENCH_DATABASE_URL, dropped and recreated) and a redis-server of its own on a free port, so the keys and
memory it counts are the soak's alone. The bench's load generators hold N logged-in sockets, `--churn` of which a
second close as a tab does and come back with ?after=<last seq>; its triggers change `--changes` orders a second
through the shop's own `order_transition`. Every sample interval: the web process's RSS, its open sockets (its
/metrics' shop_ws_connections, and the clients' count), Redis's used_memory and DBSIZE. At the end every client
must hold every notification of its user exactly once, in order, as the database has them.

The verdict, after a warm-up: the RSS slope under `--max-rss-growth` MB per 10 minutes, the Redis keys not grown,
nothing lost, twice or out of order, every socket back. Exits 1 if not. Results go to docs/performance/soak.json,
a plot beside it and the table in docs/operations.md.
"""

import argparse
import secrets
import statistics
import sys
import time
import uuid
from collections import defaultdict

import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.run import OUT, ROOT, STATIC_ROOT, configure_django, machine, raise_open_files_limit

DOC = ROOT / "docs" / "operations.md"
TABLE_START, TABLE_END = "<!-- soak:results:start -->", "<!-- soak:results:end -->"
SETTLE_DEADLINE = 120.0  # seconds for the last sockets to come back and the last notifications to arrive
POLL = 0.5
METRICS_TIMEOUT = 30.0
TAIL_SAMPLES = 3  # the samples each end of the post-warm-up run whose key counts are compared
# The key count, and how many of the keys are a user's open sockets (notifications/user_limits.py: one sorted set
# per user with a socket open, gone while a churned one comes back), read at one instant.
KEY_COUNTS_SCRIPT = "return {redis.call('DBSIZE'), #redis.call('KEYS', '*:sockets:user:*')}"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="how long the churn and the changes go on")
    parser.add_argument("--sockets", type=int, default=2000, help="customers connected at once")
    parser.add_argument("--churn", type=float, default=20, help="sockets a second that close and come back")
    parser.add_argument("--changes", type=float, default=50, help="order status changes a second")
    parser.add_argument("--sample-seconds", type=float, default=60, help="time between samples")
    parser.add_argument(
        "--warmup-minutes", type=float, default=5, help="left out of the verdict; at most a third of the run"
    )
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="MB per 10 minutes the web RSS may grow")
    parser.add_argument(
        "--max-key-growth", type=int, default=0, help="Redis keys, besides users' open sockets, gained after warm-up"
    )
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--concurrency", type=int, default=40, help="handshakes in flight per generator at start")
    parser.add_argument("--triggers", type=int, default=2, help="processes changing orders (bench/trigger.py)")
    # Unlike bench.run's (the workers' nice 10), the servers' priority: the soak needs its rate of changes, not the
    # workers' place in the queue for a core, and at nice 10 on a crowded machine the triggers made half of 50/s.
    parser.add_argument("--trigger-niceness", type=int, default=0, help="CPU priority (nice) of the triggers")
    parser.add_argument(
        "--web-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the web process beyond the stack's, e.g. WEB_GC_THRESHOLDS=20000,5,10 (repeatable)",
    )
    parser.add_argument(
        "--results",
        default="soak",
        help="name of the results in docs/performance/ (NAME.json, NAME.png); only soak's go into docs/operations.md",
    )
    args = parser.parse_args(argv)
    if any("=" not in setting for setting in args.web_env):
        parser.error("--web-env takes NAME=VALUE")
    if args.sample_seconds <= 0 or args.minutes * 60 < 2 * args.sample_seconds:
        parser.error("the run needs at least two sample intervals")
    return args


def warmup_minutes(*, asked: float, minutes: float) -> float:
    """The warm-up left out of the verdict: as asked, but at most a third of the run (short runs)."""
    return min(asked, minutes / 3)


def soak(generators, triggers, server, customers, *, redis_url: str, seconds: float, churn: float, changes: float,
         sample_seconds: float, concurrency: int = 40) -> dict:  # fmt: skip
    """Connect `customers` to `server`, churn and change orders for `seconds`, sampling; then check every delivery."""
    from bench import scenarios

    storm = scenarios.storm(generators, [server], customers, concurrency=concurrency)
    if storm["connected"] != len(customers):
        raise RuntimeError(f"only {storm['connected']} of {len(customers)} sockets opened: {storm['failures']}")
    generators.reconnect_to([server])  # a churned socket comes back to the same process, as to its tab's
    received: dict[int, list[int]] = defaultdict(list)  # user_id -> seqs in the order they arrived
    foreign: list = []
    redis_client = redis.Redis.from_url(redis_url)
    order_ids = [c.order_id for c in customers]
    scheduled = committed = behind = 0
    started = time.monotonic()
    samples = [{**sample(server, generators, redis_client, started), "changes": 0}]
    generators.churn(churn)
    try:
        while time.monotonic() - started < seconds - sample_seconds / 2:
            # One interval of changes at a time: the triggers reply when it is over, which is when to sample.
            interval = min(sample_seconds, seconds - (time.monotonic() - started))
            count = max(1, round(changes * interval))
            triggers.start(order_ids, rate=changes, count=count)
            scheduled += count
            runs = triggers.results()
            committed += sum(len(run["commits"]) for run in runs)
            behind += sum(run["behind"] for run in runs)
            _collect(generators, received, foreign)
            samples.append({**sample(server, generators, redis_client, started), "changes": committed})
            _print_sample(samples[-1])
    finally:
        generators.churn(0)
    changed_for = time.monotonic() - started
    settled = _settle(generators, received, foreign, customers)
    # The last: churn over, every socket back.
    samples.append({**sample(server, generators, redis_client, started), "changes": committed})
    redis_client.close()
    return {
        "storm": {key: storm[key] for key in ("connected", "failures", "seconds", "handshakes_per_second")},
        "seconds": round(time.monotonic() - started, 1),
        "changes_scheduled": scheduled,
        "changes": committed,
        # Behind their schedule: on a crowded machine the triggers (at the workers' lower priority) fall behind.
        "changes_late": behind,
        "changes_per_second": round(committed / changed_for, 1),
        "settle_seconds": settled,
        "foreign_frames": len(foreign),
        "samples": samples,
        "delivery": deliveries_check(received, [c.user_id for c in customers]),
        "generators": generators.stats(),
    }


def sample(server, generators, redis_client, started: float) -> dict:
    """One reading: the web process's memory and sockets, the clients' view, Redis's memory and key count."""
    stats = generators.stats()
    return {
        "minute": round((time.monotonic() - started) / 60, 2),
        "rss_mb": round(psutil.Process(server.pid).memory_info().rss / 2**20, 2),
        "ws_connections": metrics_gauge(server.base_url, "shop_ws_connections"),
        "client_open": stats["open"],
        "reconnecting": stats["reconnecting"],
        "churned": stats["churned"],
        "reconnects": stats["reconnects"],
        "redis_used_memory_mb": round(redis_client.info("memory")["used_memory"] / 2**20, 2),
        **dict(zip(("redis_keys", "redis_user_socket_keys"), redis_client.eval(KEY_COUNTS_SCRIPT, 0), strict=True)),
    }


def metrics_gauge(base_url: str, name: str) -> float | None:
    """A gauge's value from the process's /metrics (loopback is an allowed scraper by default); None if no answer."""
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=METRICS_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPError:  # a sample missed on a crowded machine is a gap in the plot, not the end of the run
        return None
    for family in text_string_to_metric_families(response.text):
        for metric in family.samples:
            if metric.name == name:
                return metric.value
    return None


def _collect(generators, received: dict[int, list[int]], foreign: list) -> None:
    frames, leaked = generators.collect()
    foreign += leaked
    for user_id, _order_id, _version, seq, _received_at in frames:
        received[user_id].append(seq)


def _settle(generators, received, foreign, customers) -> float:
    """Wait until every socket is back and every client has its user's newest notification; how long that took."""
    from notifications.models import NotificationCounter

    counters = NotificationCounter.objects.filter(user_id__in=[c.user_id for c in customers])
    newest = dict(counters.values_list("user_id", "last_seq"))
    started = time.monotonic()
    while True:
        _collect(generators, received, foreign)
        stats = generators.stats()
        behind = [u for u, seq in newest.items() if seq and (received[u] or [0])[-1] < seq]
        if (stats["open"] == len(customers) and not behind) or time.monotonic() - started > SETTLE_DEADLINE:
            return round(time.monotonic() - started, 1)
        time.sleep(POLL)


def deliveries_check(received: dict[int, list[int]], user_ids: list[int]) -> dict:
    """Each user's frames against the database's notifications for them: lost, twice, out of order, unknown."""
    from notifications.models import Notification

    stored: dict[int, list[int]] = defaultdict(list)
    rows = Notification.objects.filter(recipient_id__in=user_ids).order_by("recipient_id", "seq")
    for recipient_id, seq in rows.values_list("recipient_id", "seq").iterator(chunk_size=10_000):
        stored[recipient_id].append(seq)
    figures = {"users": len(user_ids), "users_exact": 0, "notifications": 0, "received": 0, "lost": 0,
               "duplicates": 0, "out_of_order": 0, "unknown": 0}  # fmt: skip
    for user_id in user_ids:
        got, want = received.get(user_id, []), stored.get(user_id, [])
        figures["notifications"] += len(want)
        figures["received"] += len(got)
        figures["lost"] += len(set(want) - set(got))
        figures["duplicates"] += len(got) - len(set(got))
        figures["out_of_order"] += sum(1 for before, after in zip(got, got[1:], strict=False) if after < before)
        figures["unknown"] += len(set(got) - set(want))
        figures["users_exact"] += got == want
    return figures


def slope_per_10_minutes(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (minute, value) points, per 10 minutes; None with fewer than two minutes apart."""
    if len({minute for minute, _ in points}) < 2:
        return None
    slope, _ = statistics.linear_regression([m for m, _ in points], [v for _, v in points])
    return slope * 10


def verdict(result: dict, sockets: int, *, warmup: float, max_rss_growth: float, max_key_growth: int) -> dict:
    """Pass or fail, with the figures behind each: memory and keys after `warmup` minutes, and every delivery."""
    after = [s for s in result["samples"] if s["minute"] >= warmup]
    rss_slope = slope_per_10_minutes([(s["minute"], s["rss_mb"]) for s in after])
    redis_slope = slope_per_10_minutes([(s["minute"], s["redis_used_memory_mb"]) for s in after])
    tail = min(TAIL_SAMPLES, len(after) // 2)
    keys_growth = max(map(_other_keys, after[-tail:])) - max(map(_other_keys, after[:tail])) if tail else None
    most_socket_keys = max((s["redis_user_socket_keys"] for s in after), default=None)
    delivery, last = result["delivery"], result["samples"][-1]
    checks = {
        "rss": rss_slope is not None and rss_slope <= max_rss_growth,
        # Keys of what the traffic leaves behind do not pile up; a user's socket key is there only while it is open.
        "redis_keys": keys_growth is not None and keys_growth <= max_key_growth and most_socket_keys <= sockets,
        "delivery": delivery["users_exact"] == delivery["users"] and result["foreign_frames"] == 0,
        # At the end every socket is back, as the server and the clients count them, and none needed a reset.
        "sockets": (last["client_open"], last["ws_connections"], result["generators"]["resets"])
        == (sockets, sockets, 0),
    }
    return {
        "warmup_minutes": warmup,
        "samples_after_warmup": len(after),
        "rss_mb_per_10_minutes": rss_slope,
        "max_rss_mb_per_10_minutes": max_rss_growth,
        "redis_used_memory_mb_per_10_minutes": redis_slope,
        "redis_other_keys_growth": keys_growth,
        "redis_most_user_socket_keys": most_socket_keys,
        "redis_keys_compared_samples": tail,
        "max_redis_keys_growth": max_key_growth,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _other_keys(sample: dict) -> int:
    """The keys that are not a user's open sockets: the layer's, Celery's, anything the traffic leaves behind."""
    return sample["redis_keys"] - sample["redis_user_socket_keys"]


def _print_sample(s: dict) -> None:
    print(f"   {s['minute']:6.1f} min: RSS {s['rss_mb']:.1f} MB, sockets {s['ws_connections']} "
          f"(clients {s['client_open']}, {s['reconnecting']} coming back), churned {s['churned']}, "
          f"changes {s['changes']}, "
          f"Redis {s['redis_used_memory_mb']:.2f} MB / {s['redis_keys']} keys "
          f"({s['redis_user_socket_keys']} users' sockets)", flush=True)  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    raise_open_files_limit(args.sockets)
    # One copy of how to run a private redis-server: the fault tests' (its keys and memory are then the soak's alone).
    from tests.redis_server import RedisServer

    log_dir = ROOT / "test-artifacts" / "soak"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    redis_server = RedisServer(log_dir).start()
    try:
        result = _run(args, redis_server.url, log_dir)
    finally:
        redis_server.stop()
    warmup = warmup_minutes(asked=args.warmup_minutes, minutes=args.minutes)
    outcome = verdict(result, args.sockets, warmup=warmup, max_rss_growth=args.max_rss_growth,
                      max_key_growth=args.max_key_growth)  # fmt: skip
    report = {
        "command": "make soak" + (f' SOAK_ARGS="{" ".join(argv)}"' if argv else ""),
        "arguments": vars(args),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        **result,
        "verdict": outcome,
    }
    from bench.report import write_soak_report

    write_soak_report(report, OUT, DOC, (TABLE_START, TABLE_END), name=args.results, table=args.results == "soak")
    print(f"\nDelivery: {result['delivery']}\nVerdict: {outcome}", flush=True)
    print(f"Wrote {OUT.relative_to(ROOT)}/{args.results}.json and .png", flush=True)
    return 0 if outcome["passed"] else 1


def _run(args, redis_url: str, log_dir) -> dict:
    database_url, redis_url = configure_django(secrets.token_urlsafe(64), redis_url=redis_url)
    from django.conf import settings

    from bench.data import customers_create
    from bench.load import Generators, Triggers
    from bench.stack import server_env, start_web, start_worker

    print(f"Creating {args.sockets} customers with sessions and orders...", flush=True)
    customers = customers_create(args.sockets, run=uuid.uuid4().hex[:8])
    env = server_env(database_url=database_url, redis_url=redis_url, secret_key=settings.SECRET_KEY,
                     static_root=str(STATIC_ROOT), run=uuid.uuid4().hex[:8], layer="pubsub")  # fmt: skip
    server = worker = None
    try:
        web_env = dict(setting.split("=", 1) for setting in args.web_env)
        server = start_web("daphne", "soak-daphne", {**env, **web_env}, log_dir)
        worker = start_worker("soak-worker", env, log_dir)
        print(f"   web server pid {server.pid}; Redis at {redis_url}", flush=True)
        with Generators(args.generators) as generators, Triggers(args.triggers, env, args.trigger_niceness) as triggers:
            return soak(generators, triggers, server, customers, redis_url=redis_url, seconds=args.minutes * 60,
                        churn=args.churn, changes=args.changes, sample_seconds=args.sample_seconds,
                        concurrency=args.concurrency)  # fmt: skip
    finally:
        for process in (server, worker):
            if process:
                process.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
