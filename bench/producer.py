"""One producer's changes, back to back: the shop's durable path against the textbook's, in one run.

    python -m bench.run --producer [--sockets 500] [--producer-changes 2000] [--producer-rounds 2]

One trigger process (bench/trigger.py, standing in for a Celery worker) makes `--producer-changes` status
changes one after another, as fast as it can, each customer's order walking its happy path, while every
customer is connected; the time runs from the first change until the last frame reached its socket. Each
round does it twice, once per pattern, the order alternating between rounds, so both share the machine's hour:

- `shop`: `order_transition`, the shop's own path: the lock, the history, the order, the outbox row with its seq,
  offline deliveries and unread count, COMMIT, then the claim, the two group sends and the row marked published.
- `textbook`: what the Channels and Django documentation teach (`transaction.on_commit(lambda: group_send(...))`):
  the same lock, history and order, then after COMMIT the same two group sends from the same long-lived loop,
  with frames of the same shape. No outbox: a process killed after COMMIT loses the news, and there is no seq
  to resume from, no unread count, no offline delivery.

docs/performance.md, "One producer's changes", holds the figures and what they mean.
"""

import time

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from notifications.groups import STAFF_GROUP, user_group
from notifications.services import _send_all  # the shop's own sends, on the trigger's long-lived loop
from orders.models import Order, OrderEvent, OrderEventType
from orders.notifications import order_status_payload
from orders.transitions import InvalidTransition, can_transition

PATTERNS = ("shop", "textbook")
# Changes due all at once: the trigger makes them one after another, as fast as one process can.
BACK_TO_BACK = 1e9
# Each order walks pending payment -> delivered (4 changes) at most once a round: no reset inside the timing.
STEPS_PER_ORDER = 4


def textbook_transition(*, order_id: int, to_status: str) -> Order:
    """Change an order as the textbook does: lock, check, history, save; after COMMIT a group send, no outbox."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if not can_transition(order.status, to_status):
            raise InvalidTransition(order, to_status)
        previous = order.status
        OrderEvent.objects.create(
            order=order, type=OrderEventType.STATUS_CHANGED, old_status=previous, new_status=to_status
        )
        order.status, order.version = to_status, order.version + 1
        # Django's own update: save() would record the shop's notification (orders/signals.py), and the shop's
        # queryset refuses status writes outside order_transition (orders/status_writes.py).
        QuerySet.update(
            Order.objects.filter(pk=order.pk), status=to_status, version=order.version, updated_at=timezone.now()
        )
        messages = textbook_messages(order, previous_status=previous)
        transaction.on_commit(lambda: _send_all(messages))
    return order


def textbook_messages(order: Order, *, previous_status: str) -> list[tuple[str, dict]]:
    """The customer's frame and staff's, shaped as the shop's (no seq: the socket forwards them as they are)."""
    payload = order_status_payload(order, previous_status=previous_status)
    frame = {"type": "notification", "seq": 0, "kind": "order.status_changed", **payload}
    staff = {"type": "order_changed", "order": payload["order"], "customer_id": order.customer_id, "actor": None,
             "created_at": timezone.now().isoformat(timespec="microseconds")}  # fmt: skip
    return [
        (user_group(order.customer_id), {"type": "frame.forward", "frame": frame}),
        (STAFF_GROUP, {"type": "frame.forward", "frame": staff}),
    ]


def producer(generators, triggers, customers, *, changes: int, rounds: int) -> dict:
    """`rounds` rounds of `changes` back-to-back changes per pattern, alternating which goes first."""
    from bench.data import orders_reset
    from bench.scenarios import await_deliveries, percentiles

    orders = [c.order_id for c in customers]
    if changes > len(orders) * STEPS_PER_ORDER:
        raise ValueError(f"{changes} changes need at least {-(-changes // STEPS_PER_ORDER)} connected customers")
    runs = []
    for round_number in range(rounds):
        for pattern in PATTERNS if round_number % 2 == 0 else PATTERNS[::-1]:
            orders_reset(orders)
            generators.collect()  # start from a clean slate
            start_at = triggers.start(orders, rate=BACK_TO_BACK, count=changes, pattern=pattern)
            [trigger] = triggers.results()
            commits = {(order_id, version): committed for order_id, version, committed, _ in trigger["commits"]}
            delivery = await_deliveries(generators, commits, customers)
            last = delivery.pop("last_received_at")
            seconds = last - start_at if last and not delivery["lost"] else None
            run = {
                "round": round_number + 1,
                "pattern": pattern,
                "changes": changes,
                "seconds_to_last_frame": seconds,
                "changes_per_second": changes / seconds if seconds else None,
                "trigger_seconds": trigger["elapsed"],
                "trigger_cpu_ms_per_change": trigger["cpu_seconds"] * 1000 / changes,
                "publish_ms": {
                    name: value * 1000
                    for name, value in percentiles(
                        [published - committed for _, _, committed, published in trigger["commits"] if published]
                    ).items()
                },
                **delivery,
            }
            runs.append(run)
            print(f"   round {run['round']} {pattern}: {changes} changes, last frame after {_seconds(seconds)}, "
                  f"{_rate(run['changes_per_second'])}/s, trigger CPU {run['trigger_cpu_ms_per_change']:.2f} ms "
                  f"per change, COMMIT to frame p50 {run['latency_ms'].get('p50', 0):.1f} ms, lost {run['lost']}, "
                  f"duplicates {run['duplicates']}", flush=True)  # fmt: skip
            time.sleep(1.0)  # the servers' sockets drain their last frames before the next round's reset
    return {"changes": changes, "rounds": rounds, "runs": runs, "summary": producer_summary(runs)}


def producer_summary(runs: list[dict]) -> dict:
    """Per pattern, the range of its changes per second, and the shop's best and worst against the textbook's."""
    rates = {pattern: [r["changes_per_second"] for r in runs if r["pattern"] == pattern] for pattern in PATTERNS}
    summary = {
        pattern: {"min": min(values), "max": max(values)} if values and None not in values else None
        for pattern, values in rates.items()
    }
    if summary["shop"] and summary["textbook"]:
        summary["shop_over_textbook"] = {
            "min": summary["shop"]["min"] / summary["textbook"]["max"],
            "max": summary["shop"]["max"] / summary["textbook"]["min"],
        }
    return summary


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _rate(value) -> str:
    return "-" if value is None else f"{value:,.0f}"
