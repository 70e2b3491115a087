"""`make bench`: the full stack under load, written up in docs/performance.md.

    python -m bench.run [--sockets 10000] [--hold 300] [--rate 200] [--burst 10000] ...
    python -m bench.run --acks-only [--sockets 10000] [--ack-rounds 2]   # what delivery receipts cost, alone
    python -m bench.run --chat [--chat-conversations 1000] [--chat-rate 200] [--sockets 10000]  # bench/chat.py
    python -m bench.run --bulk [--sockets 10000] [--bulk-rounds 2] [--bulk-sockets 0]  # bench/bulk.py: the two paths
    python -m bench.run --ab-env WEB_GC_THRESHOLDS=20000,5,100 [--sockets 2000] [--ab-rounds 3]  # bench/ab.py
    python -m bench.run --handshakes [--handshake-sockets 3000] [--handshake-rounds 3]  # bench/handshakes.py
    python -m bench.run --scaling 1000 5000 10000 19000 [--servers daphne granian]  # bench/scaling.py

Starts the stack the way operators run it (web servers + Celery workers on PostgreSQL
and Redis) once per configuration (daphne, then the other --servers, on RedisPubSubChannelLayer;
daphne / uvicorn on RedisChannelLayer; then daphne on two processes), connects N logged-in
customers from separate load-generator processes and measures the connect storm, the
idle hold, commit-to-client latency (the default configuration's also with every client
acknowledging each notification, back to back: what receipts cost) and a bulk burst. Results go to
docs/performance/results.json, two plots next to it, and the table in docs/performance.md.

It needs its own database (BENCH_DATABASE_URL, dropped and recreated each run) and a
Redis (BENCH_REDIS_URL); it never touches the shop's data.
"""

import argparse
import json
import os
import platform
import resource
import secrets
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from bench.stack import SERVERS, SHOP_APPLICATION, WORKER_NICENESS
from shop.open_files import open_files_limit_raise

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "performance"
DOC = ROOT / "docs" / "performance.md"
STATIC_ROOT = ROOT / "test-artifacts" / "bench" / "static"
TABLE_START, TABLE_END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
CHAT_START, CHAT_END = "<!-- bench:chat:start -->", "<!-- bench:chat:end -->"
BULK_START, BULK_END = "<!-- bench:bulk:start -->", "<!-- bench:bulk:end -->"
HANDSHAKES_START, HANDSHAKES_END = "<!-- bench:handshakes:start -->", "<!-- bench:handshakes:end -->"
PRODUCER_START, PRODUCER_END = "<!-- bench:producer:start -->", "<!-- bench:producer:end -->"
SCALING_START, SCALING_END = "<!-- bench:scaling:start -->", "<!-- bench:scaling:end -->"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000, help="customers connected at once (N)")
    parser.add_argument("--hold", type=float, default=300, help="idle hold of the default configuration, seconds")
    parser.add_argument("--compare-hold", type=float, default=30, help="idle hold of the other configurations")
    parser.add_argument("--rate", type=float, default=200, help="status changes per second in the latency run")
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=None, help="orders in the bulk burst (K); default N")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--concurrency", type=int, default=40, help="handshakes in flight per generator")
    parser.add_argument(
        "--triggers", type=int, default=2, help="processes changing orders in the latency run (bench/trigger.py)"
    )
    parser.add_argument(
        "--trigger-niceness",
        type=int,
        default=WORKER_NICENESS,
        help="CPU priority (nice) of the triggers, as of the Celery workers they stand in for; 0: the servers'",
    )
    parser.add_argument("--quick", action="store_true", help="default configuration only (no comparisons)")
    parser.add_argument(
        "--servers", nargs="+", choices=SERVERS, default=list(SERVERS),
        help="web servers compared on the pub/sub layer, one process each (daphne, the default, always first)",
    )  # fmt: skip
    parser.add_argument(
        "--scaling", type=int, nargs="+", metavar="SOCKETS",
        help="only how cost grows: each of --servers at these socket counts; writes docs/performance/scaling.json",
    )  # fmt: skip
    parser.add_argument(
        "--ack-rounds",
        type=int,
        default=1,
        help="latency runs without then with every client acknowledging, in the default configuration; 0: none",
    )
    parser.add_argument(
        "--acks-only",
        action="store_true",
        help="only the default configuration's storm and the ack comparison; writes docs/performance/acks.json",
    )
    parser.add_argument(
        "--ladder-sockets", type=int, default=3000, help="sockets per rung of the ladder (bench/floor.py); 0: none"
    )
    ab = parser.add_argument_group("an A/B of a web-process setting (bench/ab.py); --sockets over both processes")
    ab.add_argument(
        "--ab-env", action="append", metavar="NAME=VALUE", help="only the A/B: the second web process's setting "
        "(repeatable), against the default; writes docs/performance/ab.json"
    )  # fmt: skip
    ab.add_argument("--ab-rounds", type=int, default=3, help="latency runs of the A/B, both processes in each")
    handshakes = parser.add_argument_group("the handshake A/B: the session cookie alone, then with a connect ticket")
    handshakes.add_argument(
        "--handshakes",
        action="store_true",
        help="only the A/B; writes docs/performance/handshakes.json and its section",
    )
    handshakes.add_argument("--handshake-sockets", type=int, default=3000, help="sockets per storm")
    handshakes.add_argument(
        "--handshake-baseline",
        type=str,
        default=None,
        help="a checkout of the shop from before tickets (git archive <commit> | tar -x -C DIR), stormed in each "
        "round too, by the cookie alone",
    )
    handshakes.add_argument(
        "--handshake-rounds", type=int, default=3, help="storms without then with tickets, alternating; 0: none"
    )
    chat = parser.add_argument_group("the chat scenario (bench/chat.py); --sockets is then the idle sockets")
    chat.add_argument(
        "--chat", action="store_true", help="only the chat scenario; writes docs/performance/chat.json and its section"
    )
    chat.add_argument("--chat-conversations", type=int, default=1000, help="conversations, both sides connected")
    chat.add_argument("--chat-staff", type=int, default=200, help="staff members, one socket each")
    chat.add_argument(
        "--chat-rate", type=float, nargs="+", default=[200], help="chat messages per second, over all conversations; "
        "several: phases at each in turn"
    )  # fmt: skip
    chat.add_argument("--chat-status-rate", type=float, default=20, help="status changes per second in each phase")
    chat.add_argument("--chat-seconds", type=float, default=20, help="status changes per phase, seconds")
    chat.add_argument("--chat-rounds", type=int, default=1, help="phases without then with the chat, per chat rate")
    bulk = parser.add_argument_group("the bulk action alone (bench/bulk.py); --sockets is then its orders")
    bulk.add_argument(
        "--bulk", action="store_true", help="only the bulk action, both paths; writes docs/performance/bulk.json"
    )
    bulk.add_argument("--bulk-rounds", type=int, default=2, help="rounds of the per-order then the set-based path")
    bulk.add_argument(
        "--bulk-sockets", type=int, default=0, help="how many of the customers connect (0: all); every order changes"
    )
    producer = parser.add_argument_group("one producer's changes back to back (bench/producer.py)")
    producer.add_argument(
        "--producer", action="store_true", help="only this scenario; writes docs/performance/producer.json, its section"
    )
    producer.add_argument("--producer-changes", type=int, default=2000, help="changes per pattern per round")
    producer.add_argument("--producer-rounds", type=int, default=2, help="rounds, each the shop's and the textbook's")
    args = parser.parse_args(argv)
    args.servers = ["daphne", *(server for server in dict.fromkeys(args.servers) if server != "daphne")]
    if args.scaling:
        args.sockets = max(args.scaling)
    if args.triggers < 1:
        parser.error("--triggers must be at least 1")
    if args.handshakes and args.handshake_rounds < 1:
        parser.error("--handshakes needs --handshake-rounds of at least 1")
    if args.acks_only and args.ack_rounds < 1:
        parser.error("--acks-only needs --ack-rounds of at least 1")
    if args.ab_env:
        from bench.ab import ab_env_parse

        try:
            ab_env_parse(args.ab_env)
        except ValueError as error:
            parser.error(str(error))
    return args


def configure_django(secret_key: str, *, redis_url: str | None = None) -> tuple[str, str]:
    """Settings for this process and a fresh bench database; `redis_url` overrides BENCH_REDIS_URL (make soak's own)."""
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_bench")
    redis_url = redis_url or os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        DEBUG="false",
        HTTPS="false",
        ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY=secret_key,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        LOG_LEVEL="WARNING",
        SIMULATE_ORDER_PROGRESS="false",
        STATIC_ROOT=str(STATIC_ROOT),
    )
    _recreate_database(database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # the servers run with DEBUG off
    return database_url, redis_url


def _recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def use_layer(redis_url: str, layer: str, prefix: str) -> None:
    """Publish from this process on the same layer as the servers of this configuration."""
    from channels.layers import channel_layers
    from django.conf import settings

    from shop.channel_layers import channel_layers_config

    settings.CHANNEL_LAYERS = channel_layers_config(redis_url, layer, prefix)
    channel_layers.backends.clear()


def run_configuration(args, config: dict, customers, env_base: dict, log_dir: Path, primary: bool) -> dict:
    from bench import scenarios
    from bench.data import orders_reset
    from bench.load import Generators, Triggers
    from bench.stack import server_env, start_web, start_worker

    run = uuid.uuid4().hex[:8]
    env = server_env(**env_base, run=run, layer=config["layer"])
    use_layer(env_base["redis_url"], config["layer"], env["CHANNEL_LAYER_PREFIX"])
    orders_reset([c.order_id for c in customers])
    label = f"{config['server']} + {config['layer']} x{config['processes']}"
    print(f"\n== {label}", flush=True)
    servers, workers = [], []
    generators = triggers = None
    try:
        for i in range(config["processes"]):
            servers.append(start_web(config["server"], f"{config['server']}-{config['layer']}-{i}", env, log_dir))
            workers.append(start_worker(f"worker-{config['layer']}-{run}-{i}", env, log_dir))
        baseline_rss = [server.rss_bytes() for server in servers]
        print(f"   web server pids: {[server.pid for server in servers]} (for py-spy)", flush=True)
        generators = Generators(args.generators)
        triggers = Triggers(args.triggers, env, niceness=args.trigger_niceness)
        result = {**config, "label": label}
        result["storm"] = scenarios.storm(generators, servers, customers, concurrency=args.concurrency)
        connected = _connected(customers, result["storm"])
        _show("storm", result["storm"], "connected", "handshakes_per_second", "failures", "seconds")
        result["hold"] = scenarios.hold(
            generators,
            servers,
            seconds=args.hold if primary else args.compare_hold,
            baseline_rss=baseline_rss,
            connected=result["storm"]["connected"],
        )
        _show("hold", result["hold"], "open_at_end", "dropped", "kb_per_socket", "server_rss_mb")
        result["latency"] = scenarios.latency(
            generators, triggers, servers, connected, rate=args.rate, seconds=args.latency_seconds
        )
        _show("latency", result["latency"], "achieved_rate", "trigger_cpu_ms_per_change", "machine_cpu_busy",
              "server_cpu_wait_share", "server_cpu_ms_per_notification", "latency_ms", "publish_ms", "lost",
              "duplicates", "foreign_frames")  # fmt: skip
        if primary and args.ack_rounds:
            result["acks"] = ack_comparison(args, generators, triggers, servers, connected)
        if args.acks_only:
            return result
        sizes = sorted({max(1, args.burst // 10), args.burst // 2, args.burst}) if primary else [args.burst]
        result["bursts"] = []
        for size in sizes:
            orders_reset([c.order_id for c in customers])
            burst = scenarios.burst(generators, connected, size=size)
            _show(f"burst {size}", burst, "commit_to_last_received_seconds", "notifications_per_second", "lost")
            result["bursts"].append(burst)
        result["burst"] = result["bursts"][-1]
        result["server_cpu_seconds"] = [round(server.cpu_seconds(), 1) for server in servers]
        generators.close()
        generators = None
        if primary:
            result["ramp"] = latency_by_connections(args, servers, triggers, customers)
        return result
    finally:
        for helpers in (generators, triggers):
            if helpers:
                helpers.close()
        for process in servers + workers:
            process.stop()


def ack_comparison(args, generators, triggers, servers, connected) -> dict:
    """Latency runs without and with every client acknowledging, back to back (scenarios.ack_cost)."""
    from bench import scenarios

    acks = scenarios.ack_cost(
        generators, triggers, servers, connected, rate=args.rate, seconds=args.latency_seconds, rounds=args.ack_rounds
    )
    _show("acks", acks, "plain_server_cpu_ms_per_notification", "acked_server_cpu_ms_per_notification", "overhead",
          "acks_sent", "received_with_acks", "recorded_delivered", "lost")  # fmt: skip
    return acks


def run_producer(args, customers, env_base: dict, log_dir: Path) -> dict:
    """One daphne process, every customer connected, one trigger making changes back to back (bench/producer.py)."""
    from bench import scenarios
    from bench.load import Generators, Triggers
    from bench.producer import producer
    from bench.stack import server_env, start_web

    env = server_env(**env_base, run=uuid.uuid4().hex[:8], layer="pubsub")
    use_layer(env_base["redis_url"], "pubsub", env["CHANNEL_LAYER_PREFIX"])
    print(f"\n== one producer, {len(customers)} sockets, {args.producer_changes} changes per pattern", flush=True)
    server = start_web("daphne", "producer", env, log_dir)
    try:
        with Generators(args.generators) as generators, Triggers(1, env, niceness=args.trigger_niceness) as triggers:
            storm = scenarios.storm(generators, [server], customers, concurrency=args.concurrency)
            _show("storm", storm, "connected", "handshakes_per_second", "failures")
            connected = _connected(customers, storm)
            return {"storm": {"connected": storm["connected"]}, "trigger_niceness": args.trigger_niceness,
                    **producer(generators, triggers, connected, changes=args.producer_changes,
                               rounds=args.producer_rounds)}  # fmt: skip
    finally:
        server.stop()


# The ladder: the web process with its layers taken away (bench/floor.py), then the shop's own.
LADDER = [
    ("bare", "bench.floor:bare", "daphne and an application that accepts and says hello"),
    ("consumer", "bench.floor:consumer", "a Channels consumer, its channel subscribed on the layer"),
    ("auth", "bench.floor:auth", "Channels' AuthMiddlewareStack: Django's session and user lookups"),
    ("shop", SHOP_APPLICATION, "the shop: origin check, line of handshakes, groups, resume"),
]
LADDER_HOLD = 15.0  # seconds idle before the memory is read


def run_ladder(args, customers, env_base: dict, log_dir: Path) -> list[dict]:
    """Storm each rung of the ladder with the same clients: what each layer costs a handshake and a socket."""
    from bench import scenarios
    from bench.load import Generators
    from bench.stack import server_env, start_web

    env = server_env(**env_base, run=uuid.uuid4().hex[:8], layer="pubsub")
    clients = customers[: args.ladder_sockets]
    print(f"\n== ladder, {len(clients)} sockets per rung", flush=True)
    rungs = []
    for name, app, adds in LADDER:
        server = start_web("daphne", f"ladder-{name}", env, log_dir, app=app)
        try:
            with Generators(args.generators) as generators:
                baseline_rss = [server.rss_bytes()]
                storm = scenarios.storm(generators, [server], clients, concurrency=args.concurrency)
                hold = scenarios.hold(
                    generators, [server], seconds=LADDER_HOLD, baseline_rss=baseline_rss, connected=storm["connected"]
                )
        finally:
            server.stop()
        rung = {"rung": name, "app": app, "adds": adds, "storm": storm, "hold": hold}
        _show(f"rung {name}", {**storm, **hold}, "connected", "handshakes_per_second", "server_cpu_ms_per_handshake",
              "kb_per_socket", "failures")  # fmt: skip
        rungs.append(rung)
    return rungs


def latency_by_connections(args, servers, triggers, customers) -> list[dict]:
    """Latency percentiles as the number of connected sockets grows (the plot's x axis)."""
    from bench import scenarios
    from bench.data import orders_reset
    from bench.load import Generators

    orders_reset([c.order_id for c in customers])
    points, connected, failed = [], 0, set()
    with Generators(args.generators) as generators:
        for stage in sorted({len(customers) // 10, len(customers) // 4, len(customers) // 2, len(customers)}):
            storm = scenarios.storm(generators, servers, customers[connected:stage], concurrency=args.concurrency)
            connected = stage
            failed.update(storm["failed_user_ids"])
            online = [c for c in customers[:stage] if c.user_id not in failed]
            result = scenarios.latency(generators, triggers, servers, online, rate=args.rate, seconds=10)
            points.append(
                {"connections": stage, **result["latency_ms"], "lost": result["lost"], "publish": result["publish_ms"]}
            )
            print(f"   ramp {stage}: {_fmt(result['latency_ms'])}; publishing {_fmt(result['publish_ms'])}", flush=True)
    return points


def _connected(customers, storm: dict) -> list:
    """The customers whose socket opened: only they can be expected to receive anything."""
    failed = set(storm["failed_user_ids"])
    return [c for c in customers if c.user_id not in failed]


def _show(name: str, figures: dict, *keys: str) -> None:
    shown = ", ".join(f"{key}={_fmt(figures.get(key))}" for key in keys)
    print(f"   {name}: {shown}", flush=True)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(_fmt(v)) for v in value) + "]"
    return value


def run_report(args, argv, started: float, **results) -> dict:
    """A run's JSON: the command that made it, its arguments, the machine, when and how long; then its results."""
    return {
        "command": "make bench" + (f' BENCH_ARGS="{" ".join(argv)}"' if argv else ""),
        "arguments": vars(args),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        **results,
    }


def handshakes_report(args, argv, started: float, customers, env_base: dict, log_dir: Path) -> None:
    """The handshake A/B (bench/handshakes.py): handshakes.json and its section in docs/performance.md."""
    from bench.handshakes import handshakes_ab
    from bench.report import write_handshakes_report

    result = handshakes_ab(args, customers, env_base, log_dir)
    report = run_report(args, argv, started, handshakes=result)
    write_handshakes_report(report, OUT, DOC, (HANDSHAKES_START, HANDSHAKES_END))
    print(f"\nWrote {OUT.relative_to(ROOT)}/handshakes.json and its section in {DOC.relative_to(ROOT)}", flush=True)


def code_version() -> str:
    """The commit the shop's code is at, to tell runs of two versions apart; "+" when the tree has changes."""
    import subprocess

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> dict:
    import psutil

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown"
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


# Descriptors a web server needs besides its sockets: its database pool, Redis, its log... (16 at 19,000 sockets).
SPARE_FILES = 256


def raise_open_files_limit(sockets: int) -> None:
    """Every socket is a descriptor in a web server and in a generator (children inherit this limit).

    The soft limit goes up to the hard one. Where the hard one is too low for `sockets` (20,000 sockets
    against a hard limit of 20,000) and this process may raise it (root, or CAP_SYS_RESOURCE), that goes up
    too; where it may not, the run says so and goes on.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = sockets + SPARE_FILES
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):  # not permitted
            print(f"Open files are limited to {hard:,} per process: too few for {sockets:,} sockets", flush=True)
    open_files_limit_raise()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.handshakes:
        args.sockets = args.handshake_sockets
    if args.producer and argv is not None and "--sockets" not in argv:
        args.sockets = 500  # enough orders for 2,000 changes, each walked once a round
    raise_open_files_limit(args.sockets + (args.chat_conversations + args.chat_staff if args.chat else 0))
    args.burst = args.burst or args.sockets
    started = time.time()
    secret_key = secrets.token_urlsafe(64)
    database_url, redis_url = configure_django(secret_key)

    from bench.data import customers_create
    from bench.report import write_report

    log_dir = ROOT / "test-artifacts" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    env_base = {
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": secret_key,
        "static_root": str(STATIC_ROOT),
    }

    if args.chat:
        from bench.chat import chat_bench
        from bench.report import write_chat_report

        result = chat_bench(args, env_base, log_dir)
        report = run_report(args, argv, started, chat=result)
        write_chat_report(report, OUT, DOC, (CHAT_START, CHAT_END))
        print(f"\nWrote {OUT.relative_to(ROOT)}/chat.json and its section in {DOC.relative_to(ROOT)}", flush=True)
        return 0

    if args.bulk:
        from bench.bulk import bulk_bench, write_bulk_report

        result = bulk_bench(args, env_base, log_dir)
        report = run_report(args, argv, started, bulk=result)
        write_bulk_report(report, OUT, DOC, (BULK_START, BULK_END))
        print(f"\nWrote {OUT.relative_to(ROOT)}/bulk.json and its section in {DOC.relative_to(ROOT)}", flush=True)
        return 0

    print(f"Creating {args.sockets} customers with sessions and orders...", flush=True)
    customers = customers_create(args.sockets, run=uuid.uuid4().hex[:8])
    if args.ab_env:
        from bench.ab import ab_bench

        result = ab_bench(args, customers, env_base, log_dir)
        report = run_report(args, argv, started, ab=result)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "ab.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nWrote {OUT.relative_to(ROOT)}/ab.json", flush=True)
        return 0
    if args.producer:
        from bench.report import write_producer_report

        result = run_producer(args, customers, env_base, log_dir)
        report = run_report(args, argv, started, code=code_version(), producer=result)
        write_producer_report(report, OUT, DOC, (PRODUCER_START, PRODUCER_END))
        print(f"\nWrote {OUT.relative_to(ROOT)}/producer.json and its section in {DOC.relative_to(ROOT)}", flush=True)
        return 0
    if args.scaling:
        from bench.report import write_scaling_report
        from bench.scaling import scaling_bench

        result = scaling_bench(args, customers, env_base, log_dir)
        report = run_report(args, argv, started, scaling=result)
        write_scaling_report(report, OUT, DOC, (SCALING_START, SCALING_END))
        print(f"\nWrote {OUT.relative_to(ROOT)}/scaling.json and its section in {DOC.relative_to(ROOT)}", flush=True)
        return 0
    if args.acks_only:
        config = {"server": "daphne", "layer": "pubsub", "processes": 1}
        args.hold = 0.0
        result = run_configuration(args, config, customers, env_base, log_dir, primary=True)
        report = run_report(args, argv, started, acks=result["acks"])
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "acks.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nWrote {OUT.relative_to(ROOT)}/acks.json", flush=True)
        return 0

    if args.handshakes:
        handshakes_report(args, argv, started, customers, env_base, log_dir)
        return 0

    # The ladder first: run last, after 20 minutes of load, every rung cost 40-60 % more CPU per handshake than
    # stormed alone, even the one that touches no database (docs/performance.md); first, it compares with the storms.
    ladder = run_ladder(args, customers, env_base, log_dir) if args.ladder_sockets else []
    if args.handshake_rounds:
        handshakes_report(args, argv, started, customers, env_base, log_dir)
    # Then the default configuration (daphne, pub/sub): it alone gets the long hold and the ramp.
    configs = [{"server": "daphne", "layer": "pubsub", "processes": 1}]
    if not args.quick:
        configs += [{"server": server, "layer": "pubsub", "processes": 1} for server in args.servers[1:]]
        configs += [
            {"server": "daphne", "layer": "core", "processes": 1},
            {"server": "uvicorn", "layer": "core", "processes": 1},
        ]
    results = []
    for index, config in enumerate(configs):
        results.append(run_configuration(args, config, customers, env_base, log_dir, primary=index == 0))
    # Scale-out with the default server and layer: two web processes and two workers.
    results.append(
        run_configuration(
            args, {"server": "daphne", "layer": "pubsub", "processes": 2}, customers, env_base, log_dir, primary=False
        )
    )
    report = {
        "command": "make bench" + (f' BENCH_ARGS="{" ".join(argv)}"' if argv else ""),
        "arguments": vars(args),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "results": results,
        "ladder": ladder,
    }
    write_report(report, OUT, DOC, (TABLE_START, TABLE_END))
    print(f"\nWrote {OUT.relative_to(ROOT)}/ and the table in {DOC.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
