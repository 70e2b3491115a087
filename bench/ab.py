"""`make bench BENCH_ARGS="--ab-env NAME=VALUE ..."`: one web-process setting against the default, side by side.

Two daphne processes on the default layer serve the same bench at once, the second with the settings given; the
storm spreads the customers over both (customer i to process i mod 2), and each latency run changes both halves'
orders alike, so a machine that speeds up or slows down weighs on both sides alike. Each run reports each
process's latency (its half of the customers), its event loop's stalls over 30 ms (shop/loop_lag.py) and its wait
for a core. Raw figures: docs/performance/ab.json; the write-up is by hand (docs/performance.md).
"""

import uuid

FIGURES = ("achieved_rate", "changes_late", "received", "lost", "duplicates", "foreign_frames", "latency_ms",
           "latency_ms_by_group", "server_loop_stalls", "server_cpu_wait_share", "machine_cpu_busy")  # fmt: skip


def ab_env_parse(items: list[str]) -> dict[str, str]:
    """`["NAME=VALUE", ...]` as a dict; a clear error for an item without `=`."""
    variant = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise ValueError(f"--ab-env takes NAME=VALUE, not {item!r}")
        variant[name] = value
    return variant


def ab_bench(args, customers, env_base: dict, log_dir) -> dict:
    """Storm both processes, then `args.ab_rounds` latency runs at `args.rate`, each process's figures apart."""
    from bench import scenarios
    from bench.data import orders_reset
    from bench.load import Generators, Triggers
    from bench.run import _connected, _show, use_layer
    from bench.stack import server_env, start_web, start_worker

    variant = ab_env_parse(args.ab_env)
    run = uuid.uuid4().hex[:8]
    env = server_env(**env_base, run=run, layer="pubsub")
    use_layer(env_base["redis_url"], "pubsub", env["CHANNEL_LAYER_PREFIX"])
    orders_reset([c.order_id for c in customers])
    print(f"\n== A/B: daphne + pubsub, default against {variant}", flush=True)
    servers, workers = [], []
    generators = triggers = None
    try:
        servers = [
            start_web("daphne", "ab-default", env, log_dir),
            start_web("daphne", "ab-variant", {**env, **variant}, log_dir),
        ]
        workers = [start_worker(f"worker-ab-{run}", env, log_dir)]
        print(f"   web server pids: default {servers[0].pid}, variant {servers[1].pid} (for py-spy)", flush=True)
        generators = Generators(args.generators)
        triggers = Triggers(args.triggers, env, niceness=args.trigger_niceness)
        storm = scenarios.storm(generators, servers, customers, concurrency=args.concurrency)
        _show("storm", storm, "connected", "handshakes_per_second", "failures", "seconds")
        connected = _connected(customers, storm)
        online = {c.user_id for c in connected}
        # As the storm spread them: customer i on servers[i % 2].
        groups = {
            name: [c for i, c in enumerate(customers) if i % 2 == side and c.user_id in online]
            for side, name in enumerate(("default", "variant"))
        }
        runs = []
        for number in range(1, args.ab_rounds + 1):
            latency = scenarios.latency(
                generators, triggers, servers, connected, rate=args.rate, seconds=args.latency_seconds, groups=groups
            )
            runs.append({figure: latency[figure] for figure in FIGURES})
            _show(f"round {number}", latency, "achieved_rate", "latency_ms_by_group", "server_loop_stalls",
                  "server_cpu_wait_share", "machine_cpu_busy", "lost")  # fmt: skip
        return {"variant": variant, "storm": storm, "runs": runs}
    finally:
        for helpers in (generators, triggers):
            if helpers:
                helpers.close()
        for process in servers + workers:
            process.stop()
