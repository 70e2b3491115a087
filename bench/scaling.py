"""How each cost grows with the sockets held: `make bench BENCH_ARGS="--scaling 1000 5000 10000 19000"`.

One web process per server (`--servers`, daphne first), the same customers connected in stages: at each count
the storm of that stage's new sockets (server CPU per handshake, with the earlier ones held), memory per socket
after a short idle, then a short latency run over every socket held (p99, and the deliveries later than
scenarios.LATE, which stand in for stalls: there is no event-loop probe in the web process). A stage's figures
are its own, so a reader sees whether a cost is flat or grows with the work (docs/performance.md, "How cost grows").
"""

import time
import uuid

from bench import scenarios
from bench.data import orders_reset
from bench.load import Generators, Triggers
from bench.stack import server_env, start_web, start_worker

SETTLE = 10.0  # seconds idle after each stage's storm before memory is read
LATENCY_SECONDS = 10.0


def scaling_bench(args, customers, env_base: dict, log_dir) -> list[dict]:
    """For each server in `args.servers`, a row per socket count in `args.scaling` (bounded by the customers)."""
    results = []
    for server_kind in args.servers:
        result = {"server": server_kind, "stages": []}
        results.append(result)
        try:
            _stages(args, server_kind, customers, env_base, log_dir, result["stages"])
        except RuntimeError as error:  # a server that died under the load is a finding, not the end of the run
            print(f"   {server_kind}: {error}", flush=True)
            result["error"] = str(error)
    return results


def _stages(args, server_kind: str, customers, env_base: dict, log_dir, stages: list[dict]) -> None:
    """Append a row to `stages` per socket count, up to the first the server does not survive."""
    from bench.run import _show, use_layer

    run = uuid.uuid4().hex[:8]
    env = server_env(**env_base, run=run, layer="pubsub")
    use_layer(env_base["redis_url"], "pubsub", env["CHANNEL_LAYER_PREFIX"])
    orders_reset([c.order_id for c in customers])
    print(f"\n== scaling: {server_kind} + pubsub x1", flush=True)
    server = start_web(server_kind, f"scaling-{server_kind}-{run}", env, log_dir)
    worker = None
    connected, failed = 0, set()
    try:
        worker = start_worker(f"worker-scaling-{run}", env, log_dir)
        baseline_rss = server.rss_bytes()
        triggers = Triggers(args.triggers, env, niceness=args.trigger_niceness)
        with Generators(args.generators) as generators, triggers:
            for count in sorted(n for n in args.scaling if n <= len(customers)):
                storm = scenarios.storm(generators, [server], customers[connected:count], concurrency=args.concurrency)
                connected = count
                failed.update(storm["failed_user_ids"])
                time.sleep(SETTLE)  # idle: what a held socket costs, not a handshake's garbage
                open_now = generators.open_sockets()
                kb_per_socket = (server.rss_bytes() - baseline_rss) / max(open_now, 1) / 1024
                online = [c for c in customers[:count] if c.user_id not in failed]
                latency = scenarios.latency(
                    generators, triggers, [server], online, rate=args.rate, seconds=LATENCY_SECONDS
                )
                stage = {
                    "sockets": count,
                    "open": open_now,
                    "storm": {k: v for k, v in storm.items() if k != "failed_user_ids"},
                    "kb_per_socket": kb_per_socket,
                    "latency": {
                        k: latency[k]
                        for k in (
                            "latency_ms",
                            "late",
                            "lost",
                            "received",
                            "achieved_rate",
                            "server_cpu_wait_share",
                            "machine_cpu_busy",
                        )
                    },  # fmt: skip
                }
                _show(f"{server_kind} at {count}", {**storm, **stage, **latency}, "connected", "handshakes_per_second",
                      "server_cpu_ms_per_handshake", "kb_per_socket", "latency_ms", "late", "lost")  # fmt: skip
                stages.append(stage)
                server.check_running()  # granian 2.8.9 died under the storms here (docs/performance.md)
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
