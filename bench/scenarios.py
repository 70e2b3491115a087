"""The measurements: connect storm, idle hold, commit-to-client latency (with and without receipts), bulk burst.

Each takes the running web servers, the load generators and the bench customers and
returns plain figures (a dict), which bench/run.py writes out. Status changes go
through the shop's own code (`order_transition`, `orders_transition_bulk`: what the
admin and the Celery tasks call): the latency run's from the trigger processes
(bench/trigger.py), the burst's from this one. Commit times are taken on the host
clock the clients stamp their frames with.
"""

import statistics
import time

from django.db import transaction
from django.utils import timezone

from bench.data import Customer
from bench.load import Generators, Triggers
from bench.loadgen import ACK_INTERVAL
from bench.stack import cpu_seconds, cpu_wait_seconds, loop_lag_buckets, machine_busy_since, machine_cpu_seconds
from notifications.models import Notification
from orders.models import Order, OrderStatus
from orders.transitions_bulk import orders_transition_bulk

DELIVERY_DEADLINE = 120.0  # seconds to wait for stragglers before counting them as lost
POLL = 0.2
LATE = 0.1  # seconds from COMMIT to the frame: a delivery this late waited on a stalled process
# After the last delivery, what a latency run still measures: the acks sent then, and those held for the interval.
SETTLE = ACK_INTERVAL + 0.5


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {
        "p50": at(50),
        "p95": at(95),
        "p99": at(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def storm(
    generators: Generators,
    servers: list,
    customers: list[Customer],
    *,
    concurrency: int,
    tickets: dict[int, str] | None = None,
) -> dict:
    """Connect every customer as fast as the servers accept them (as after a deploy).

    With `tickets` (user id -> connect ticket) each connects as a page does, with its session cookie and ticket.
    """
    clients = [
        [c.user_id, c.session_key, _ws_url(servers[i % len(servers)], tickets, c), servers[i % len(servers)].base_url,
         c.staff]
        for i, c in enumerate(customers)
    ]  # fmt: skip
    cpu_before = generators.cpu_seconds()
    server_cpu_before = sum(cpu_seconds(server.pid) for server in servers)
    machine_before = machine_cpu_seconds()
    replies = generators.connect(clients, concurrency)
    server_cpu = sum(cpu_seconds(server.pid) for server in servers) - server_cpu_before
    machine_busy = machine_busy_since(machine_before)
    started = min(reply["started"] for reply in replies)
    finished = max(reply["finished"] for reply in replies)
    connected = sum(reply["connected"] for reply in replies)
    failures: dict[str, int] = {}
    for reply in replies:
        for kind, count in reply["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    seconds = finished - started
    return {
        "failed_user_ids": [user_id for reply in replies for user_id in reply["failed_user_ids"]],
        "clients": len(clients),
        "connected": connected,
        "failures": failures,
        "http_5xx": sum(count for kind, count in failures.items() if kind.startswith("http_5")),
        "seconds": seconds,
        "handshakes_per_second": connected / seconds if seconds else 0.0,
        "handshake_seconds": percentiles([s for reply in replies for s in reply["handshake_seconds"]]),
        "generator_cpu_share": (generators.cpu_seconds() - cpu_before) / seconds / len(generators.processes),
        # What a handshake costs the servers, whatever the rate: 1000 / this is what one core could take.
        "server_cpu_ms_per_handshake": server_cpu * 1000 / connected if connected else None,
        # How busy the whole machine was (servers, PostgreSQL, Redis, generators): near 1, more processes cannot help.
        "machine_cpu_busy": machine_busy,
    }


def _ws_url(server, tickets: dict[int, str] | None, customer: Customer) -> str:
    return server.ws_url if tickets is None else f"{server.ws_url}?ticket={tickets[customer.user_id]}"


def hold(generators: Generators, servers: list, *, seconds: float, baseline_rss: list[int], connected: int) -> dict:
    """Keep the sockets idle for `seconds`; how many are still open, and what they cost the servers."""
    samples = []
    end = time.monotonic() + seconds
    while True:
        samples.append({"t": round(seconds - (end - time.monotonic()), 1), "open": generators.open_sockets()})
        if time.monotonic() >= end:
            break
        time.sleep(min(30.0, max(0.0, end - time.monotonic())))  # the hold itself is the measurement
    rss = [server.rss_bytes() for server in servers]
    still_open = samples[-1]["open"]
    return {
        "seconds": seconds,
        "open_at_start": samples[0]["open"],
        "open_at_end": still_open,
        "dropped": connected - still_open,
        "samples": samples,
        "server_rss_mb": [round(r / 2**20, 1) for r in rss],
        "kb_per_socket": (sum(rss) - sum(baseline_rss)) / max(still_open, 1) / 1024,
    }


def latency(
    generators: Generators,
    triggers: Triggers,
    servers: list,
    customers: list[Customer],
    *,
    rate: float,
    seconds: float,
    acks: bool = False,
    groups: dict[str, list[Customer]] | None = None,
) -> dict:
    """Change orders at a steady `rate` per second and time each change from COMMIT to the client's frame.

    With `acks`, every client acknowledges each notification as a visible page does (the server records it).
    With `groups` (named subsets of `customers`), the latency of each too, as `latency_ms_by_group`.
    """
    generators.acks(acks)
    generators.collect()  # start from a clean slate
    acks_before, _ = generators.ack_stats()
    count = int(rate * seconds)
    recorded_from = timezone.now()
    start_at = triggers.start([c.order_id for c in customers], rate=rate, count=count)
    time.sleep(max(0.0, start_at - time.time()))  # the machine is measured from the first change due
    machine_started = machine_cpu_seconds()
    waits_started = [cpu_wait_seconds(server.pid) for server in servers]
    server_cpu_started = sum(cpu_seconds(server.pid) for server in servers)
    lags_started = [loop_lag_buckets(server.base_url) for server in servers]
    runs = triggers.results()
    machine_busy = machine_busy_since(machine_started)
    waits = [cpu_wait_seconds(server.pid) for server in servers]
    window = time.time() - start_at
    changes = [change for run in runs for change in run["commits"]]
    commits = {(order_id, version): committed_at for order_id, version, committed_at, _ in changes}
    # The publishing process's share of the latency: from COMMIT until Redis took the publish.
    publishing = [published - committed for _, _, committed, published in changes if published is not None]
    delivery = await_deliveries(generators, commits, customers, groups=groups)
    lags = [loop_lag_buckets(server.base_url) for server in servers]
    stalls = [loop_stalls(then, now) for then, now in zip(lags_started, lags, strict=True)]
    time.sleep(SETTLE)  # with or without acks alike, so both runs are measured over the same stretch
    server_cpu = sum(cpu_seconds(server.pid) for server in servers) - server_cpu_started
    acks_after, acks_pending = generators.ack_stats()
    generators.acks(False)
    return {
        "changes": count,
        "acks": acks,
        # What the web servers spent per notification delivered (and, with acks, its receipt handled).
        "server_cpu_ms_per_notification": server_cpu * 1000 / delivery["received"] if delivery["received"] else None,
        "acks_sent": acks_after - acks_before,
        "acks_pending": acks_pending,
        # Notifications of this run the servers recorded as delivered: with acks, every one received.
        "recorded_delivered": Notification.objects.filter(
            recipient_id__in=[c.user_id for c in customers], created_at__gte=recorded_from, delivered_at__isnull=False
        ).count(),
        "target_rate": rate,
        "achieved_rate": count / max(run["elapsed"] for run in runs),
        "changes_late": sum(run["behind"] for run in runs),
        "trigger_processes": len(runs),
        "trigger_niceness": triggers.niceness,
        # CPU the triggers spent per change (ORM, transaction, publish): times the rate, the cores they need.
        "trigger_cpu_ms_per_change": sum(run["cpu_seconds"] for run in runs) * 1000 / count,
        # The whole machine: servers, workers, triggers, generators, PostgreSQL, Redis.
        "machine_cpu_busy": machine_busy,
        # Per web server: the share of the run its event loop was ready but waiting for a core (a crowded box).
        "server_cpu_wait_share": [
            None if None in (now, then) else (now - then) / window
            for now, then in zip(waits, waits_started, strict=True)
        ],
        # Per web server, from the first change due to the last delivery: its event loop's stalls (shop/loop_lag.py).
        "server_loop_stalls": stalls,
        "published": len(publishing),
        "publish_ms": {name: value * 1000 for name, value in percentiles(publishing).items()},
        **delivery,
    }


STALL_SECONDS = 0.03  # a lag over this is a stall (the performance issue's bound)


def loop_stalls(before: dict[float, float] | None, after: dict[float, float] | None) -> dict | None:
    """Between two readings of a server's loop-lag histogram: the timers run over STALL_SECONDS late, and the
    bounds of the worst lag (its bucket); None for a server without the probe."""
    if before is None or after is None:
        return None
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    worst_at_most = next(bound for bound, count in counts.items() if count == total)
    worst_over = max((bound for bound, count in counts.items() if count < total), default=0.0)
    return {
        "probes": int(total),
        "over_30ms": int(total - counts[STALL_SECONDS]),
        "worst_ms_over": worst_over * 1000,
        "worst_ms_at_most": worst_at_most * 1000,
    }


ACK_RUN_FIGURES = ("acks", "received", "lost", "server_cpu_ms_per_notification", "acks_sent", "recorded_delivered",
                   "latency_ms", "machine_cpu_busy")  # fmt: skip


def ack_cost(
    generators: Generators,
    triggers: Triggers,
    servers: list,
    customers: list[Customer],
    *,
    rate: float,
    seconds: float,
    rounds: int = 1,
) -> dict:
    """Server CPU per notification without receipts and with every client acknowledging, back to back.

    Each round is a latency run without acks, then one with; more rounds alternate, so a machine that
    speeds up or slows down during the run weighs on both sides alike. The verdict is over all rounds.
    """
    runs = []
    for _ in range(rounds):
        for acks in (False, True):
            runs.append(latency(generators, triggers, servers, customers, rate=rate, seconds=seconds, acks=acks))

    def per_notification(acks: bool) -> float | None:
        chosen = [run for run in runs if run["acks"] == acks and run["server_cpu_ms_per_notification"] is not None]
        received = sum(run["received"] for run in chosen)
        cpu_ms = sum(run["server_cpu_ms_per_notification"] * run["received"] for run in chosen)
        return cpu_ms / received if received else None

    plain, acked = per_notification(False), per_notification(True)
    return {
        "rate": rate,
        "seconds": seconds,
        "rounds": rounds,
        "clients": len(customers),
        "plain_server_cpu_ms_per_notification": plain,
        "acked_server_cpu_ms_per_notification": acked,
        "overhead": acked / plain - 1 if plain and acked is not None else None,
        "acks_sent": sum(run["acks_sent"] for run in runs),
        "received_with_acks": sum(run["received"] for run in runs if run["acks"]),
        "recorded_delivered": sum(run["recorded_delivered"] for run in runs if run["acks"]),
        "lost": sum(run["lost"] for run in runs),
        "runs": [{key: run[key] for key in ACK_RUN_FIGURES} for run in runs],
    }


def burst(generators: Generators, customers: list[Customer], *, size: int) -> dict:
    """One bulk action (the admin's) moving `size` orders of `size` customers at once."""
    chosen = customers[:size]
    statuses = dict(Order.objects.filter(pk__in=[c.order_id for c in chosen]).values_list("pk", "status"))
    assert all(status == OrderStatus.PENDING_PAYMENT for status in statuses.values()), "reset the orders first"
    generators.collect()
    committed: list[float] = []
    started = time.time()
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time()))
        result = orders_transition_bulk(order_ids=[c.order_id for c in chosen], to_status=OrderStatus.PAID)
    published = time.time()
    assert not result.skipped, result.skipped[:5]
    commits = {(order.pk, order.version): committed[0] for order in result.changed}
    delivery = await_deliveries(generators, commits, chosen)
    last = delivery.pop("last_received_at")
    return {
        "size": size,
        "bulk_action_seconds": committed[0] - started,
        "publish_seconds": published - committed[0],
        "commit_to_last_received_seconds": last - committed[0] if last else None,
        "notifications_per_second": delivery["received"] / (last - committed[0]) if last else 0.0,
        **delivery,
    }


def await_deliveries(
    generators: Generators, commits: dict, customers: list[Customer], *, groups: dict[str, list[Customer]] | None = None
) -> dict:
    """Wait until every committed change reached its customer's socket; latency, loss, duplicates, leaks.

    With `groups` (named subsets of `customers`), each one's latency and loss too (`latency_ms_by_group`).
    """
    owner = {c.order_id: c.user_id for c in customers}
    times: dict[tuple[int, str], float] = {}
    duplicates = 0
    foreign: list = []
    end = time.monotonic() + DELIVERY_DEADLINE
    while True:
        received, leaked = generators.collect()
        foreign += leaked
        for user_id, order_id, version, _seq, received_at in received:
            if owner.get(order_id) != user_id:
                foreign.append({"user_id": user_id, "order_id": order_id})
            elif (order_id, version) in times:
                duplicates += 1
            else:
                times[(order_id, version)] = received_at
        if len(times.keys() & commits.keys()) == len(commits) or time.monotonic() > end:
            break
        time.sleep(POLL)
    latencies = [times[key] - commits[key] for key in commits if key in times]
    by_group = {}
    for name, members in (groups or {}).items():
        orders = {c.order_id for c in members}
        mine = [key for key in commits if key[0] in orders]
        seconds = [times[key] - commits[key] for key in mine if key in times]
        by_group[name] = {
            "changes": len(mine),
            "lost": len(mine) - len(seconds),
            **{figure: value * 1000 for figure, value in percentiles(seconds).items()},
        }
    return {
        **({"latency_ms_by_group": by_group} if groups else {}),
        "received": len(latencies),
        "lost": len(commits) - len(latencies),
        "duplicates": duplicates,
        "foreign_frames": len(foreign),
        "latency_ms": {name: value * 1000 for name, value in percentiles(latencies).items()},
        # Deliveries held up past LATE: with no event-loop probe in the web process, what stalls show as.
        "late": sum(1 for latency in latencies if latency > LATE),
        "last_received_at": max((times[key] for key in commits if key in times), default=None),
    }
