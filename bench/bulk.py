"""make bench BENCH_ARGS="--bulk": the admin's bulk action, per order against set-based, in one run.

N customers (all, or `--bulk-sockets` of them, connected to one daphne process); each round moves all N orders
(one per customer) to paid with the per-order path (`orders_transition_each`: a savepoint and `order_transition`
per order) and with the set-based one (`orders_transition_bulk`, what the admin and the tasks call), in alternating
order, called as the admin's action calls them. Measured from the call (the click) to the last frame received,
every change matched by (order, version) at its connected customer's socket (docs/performance.md, "Bulk actions").
"""

import json
import time
import uuid
from pathlib import Path

from bench.load import Generators
from bench.report import doc_section_replace
from bench.scenarios import await_deliveries
from bench.stack import machine_busy_since, machine_cpu_seconds

PATHS = ("per order", "set-based")


def bulk_action(generators: Generators, customers: list, connected: list, *, path: str) -> dict:
    """One bulk action moving every customer's order to paid through `path`: click to the last frame at `connected`."""
    from orders.models import Order, OrderStatus
    from orders.transitions import orders_transition_each
    from orders.transitions_bulk import orders_transition_bulk

    transition = {"per order": orders_transition_each, "set-based": orders_transition_bulk}[path]
    order_ids = [customer.order_id for customer in customers]
    assert set(Order.objects.filter(pk__in=order_ids).values_list("status", flat=True)) == {
        OrderStatus.PENDING_PAYMENT
    }, "reset the orders first"
    generators.collect()
    machine_before = machine_cpu_seconds()
    clicked = time.time()
    result = transition(order_ids=order_ids, to_status=OrderStatus.PAID)
    returned = time.time()
    assert not result.skipped, result.skipped[:5]
    # Latency here is from the click, for every order: what the admin waits for, whatever commits when.
    awaited = {customer.order_id for customer in connected}
    commits = {(order.pk, order.version): clicked for order in result.changed if order.pk in awaited}
    delivery = await_deliveries(generators, commits, connected)
    last = delivery.pop("last_received_at")
    return {
        "path": path,
        "orders": len(order_ids),
        "action_seconds": returned - clicked,
        "click_to_last_frame_seconds": last - clicked if last else None,
        "machine_cpu_busy": machine_busy_since(machine_before),
        **delivery,
    }


def bulk_bench(args, env_base: dict, log_dir: Path) -> dict:
    """The stack on one daphne process, N orders of N customers (`--bulk-sockets` of them connected), then
    `--bulk-rounds` rounds of both paths."""
    from bench import scenarios
    from bench.data import customers_create, orders_reset
    from bench.run import use_layer
    from bench.stack import server_env, start_web

    run = uuid.uuid4().hex[:8]
    print(f"Creating {args.sockets} customers with sessions and orders...", flush=True)
    customers = customers_create(args.sockets, run=run)
    env = server_env(**env_base, run=run, layer="pubsub")
    use_layer(env_base["redis_url"], "pubsub", env["CHANNEL_LAYER_PREFIX"])
    server = generators = None
    try:
        server = start_web("daphne", f"daphne-bulk-{run}", env, log_dir)
        generators = Generators(args.generators)
        sockets = customers[: args.bulk_sockets or len(customers)]
        storm = scenarios.storm(generators, [server], sockets, concurrency=args.concurrency)
        print(f"   storm: {storm['connected']:,} of {storm['clients']:,} connected, failures {storm['failures']}",
              flush=True)  # fmt: skip
        # Every order changes; the frames are awaited at the sockets that opened (on a busy machine, not all).
        failed = set(storm["failed_user_ids"])
        connected = [customer for customer in sockets if customer.user_id not in failed]
        actions = []
        for round_number in range(args.bulk_rounds):
            # Alternating which goes first, so neither always runs on the warmer (or the busier) machine.
            for path in PATHS if round_number % 2 == 0 else reversed(PATHS):
                orders_reset([customer.order_id for customer in customers])
                action = {"round": round_number + 1, **bulk_action(generators, customers, connected, path=path)}
                _show(action)
                actions.append(action)
        return {
            "orders": len(customers),
            "sockets": storm["connected"],
            "storm_failures": storm["failures"],
            "actions": actions,
        }
    finally:
        if generators:
            generators.close()
        if server:
            server.stop()


def _show(action: dict) -> None:
    last = action["click_to_last_frame_seconds"]
    print(f"   round {action['round']}, {action['path']}: the call {action['action_seconds']:.1f} s, last frame after "
          f"{last if last is None else round(last, 1)} s, lost {action['lost']}", flush=True)  # fmt: skip


def write_bulk_report(report: dict, out: Path, doc: Path, markers: tuple[str, str]) -> None:
    """bulk.json, and its table in docs/performance.md ("Bulk actions")."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk.json").write_text(json.dumps(report, indent=2) + "\n")
    doc_section_replace(doc, markers, bulk_markdown(report))


def bulk_markdown(report: dict) -> str:
    machine, bulk = report["machine"], report["bulk"]
    lines = [
        f"Measured {report['started']} in {report['minutes']} minutes on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, one daphne process, {bulk['sockets']:,} customers connected (frames awaited at "
        f"theirs); the load generators ran on the same machine. Command: `{report['command']}`.",
        "",
        "| round | path | orders | the action's call | click to last frame | click to frame p50 / p99 (ms) "
        "| received / lost / twice | machine busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for action in bulk["actions"]:
        latency = action["latency_ms"]
        lines.append(
            f"| {action['round']} | {action['path']} | {action['orders']:,} | {action['action_seconds']:.1f} s "
            f"| {action['click_to_last_frame_seconds']:.1f} s | {latency.get('p50', 0):,.0f} / "
            f"{latency.get('p99', 0):,.0f} | {action['received']:,} / {action['lost']} / {action['duplicates']} "
            f"| {action['machine_cpu_busy']:.0%} |"
        )
    return "\n".join(lines) + "\n"
