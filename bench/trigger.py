"""One trigger process: changes orders on a fixed schedule during the latency run, as the shop's callers do.

Changing one order from a sync caller costs a few ms of CPU (the ORM, the transaction, the
publish), so one process cannot offer 200 changes a second on a core it shares with the rest of
the stack. A shop's changes come from many processes (web processes serving the admin, Celery
workers); the bench spreads the schedule over several trigger processes, as it spreads sockets
over load generators.

bench/load.py starts these with the servers' environment (database, channel layer) and drives
them over stdin/stdout, one JSON object per line:

    (on start)            -> {"ready": true}, once Django is set up
    {"cmd": "run", "order_ids": [...], "rate": 100.0, "count": 1000, "start_at": <epoch seconds>,
     "pattern": "shop"}   # or "textbook": the same changes without the outbox (bench/producer.py)
                          -> {"commits": [[order_id, version, committed_at, published_at], ...], "behind": n,
                              "cpu_seconds": s, "elapsed": s}
    {"cmd": "close"}      -> exits

A run changes `count` orders, one every 1/`rate` seconds from `start_at`, walking each order
along the happy path and back to the start. Each change goes through the shop's own
`order_transition`; its commit time is taken right after COMMIT, on the clock the clients
stamp their frames with, and its publish time when Redis has taken the publish (the share of
the latency spent in the publishing process: the unread count and the send). A trigger sends as
a Celery worker does, from a long-lived event loop of its own (notifications/publishing_loop.py).
"""

import json
import sys
import time
from collections.abc import Iterator

import django

# Replies go to bench/load.py on the real stdout; anything else that prints goes to stderr (main).
_replies = sys.stdout

if __name__ == "__main__":
    sys.stdout = sys.stderr
    django.setup()  # the shop's models, imported below, need the app registry

# isort: split

from django.db import transaction

from bench.data import orders_reset
from bench.producer import textbook_transition
from notifications import services
from notifications.publishing_loop import publishing_loop_enable
from orders.models import Order, OrderStatus
from orders.transitions import order_transition

# How each pattern changes one order: the shop's own path, or the textbook's without an outbox.
PATTERNS = {"shop": order_transition, "textbook": textbook_transition}

# The happy path an order walks through during the latency run, one step per change.
FORWARD = {
    OrderStatus.PENDING_PAYMENT: OrderStatus.PAID,
    OrderStatus.PAID: OrderStatus.PROCESSING,
    OrderStatus.PROCESSING: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
}


# When each publish of this process was taken by Redis (see stamp_publishes).
_published: list[float] = []


def stamp_publishes() -> None:
    """Note when Redis has taken each publish, by wrapping the shop's one publishing call in this process.

    What is sent, and how, is unchanged: the wrapper awaits the shop's own `group_send_all`.
    """
    group_send_all = services.group_send_all

    async def group_send_all_stamped(messages):
        outcomes = await group_send_all(messages)
        _published.append(time.time())
        return outcomes

    services.group_send_all = group_send_all_stamped


_committed: list[float] = []


def stamp_commits() -> None:
    """Note when each change committed: a hook put before a transaction's first, so it runs right after COMMIT.

    By wrapping Django's `on_commit`, which the shop's outbox and the textbook pattern both call, so a change runs
    as a Celery task runs it: not nested in a transaction of the bench's (a savepoint and its release, two round
    trips more).
    """
    on_commit = transaction.on_commit

    def on_commit_stamped_first(func, using=None, robust=False):
        if not transaction.get_connection(using).run_on_commit:  # the transaction's first hook
            on_commit(lambda: _committed.append(time.time()), using)
        on_commit(func, using, robust)

    transaction.on_commit = on_commit_stamped_first


def change_recording_commit(order_id: int, to_status: str, *, pattern: str = "shop") -> list:
    """One status change: [order id, new version, when it committed, when its publish reached Redis or None]."""
    _committed.clear()
    _published.clear()
    order = PATTERNS[pattern](order_id=order_id, to_status=to_status)
    return [order_id, order.version, _committed[0], _published[0] if _published else None]


def due_changes(*, order_ids: list[int], rate: float, count: int, start_at: float) -> Iterator[tuple[float, int]]:
    """(when it is due, which order) for each of the `count` changes: one every 1/`rate` s, the orders in turn."""
    for i in range(count):
        yield start_at + i / rate, order_ids[i % len(order_ids)]


def run(*, order_ids: list[int], rate: float, count: int, start_at: float, pattern: str = "shop") -> dict:
    statuses = dict(Order.objects.filter(pk__in=order_ids).values_list("pk", "status"))
    commits, behind = [], 0
    cpu_started = time.process_time()  # is this process what limits the rate?
    for due, order_id in due_changes(order_ids=order_ids, rate=rate, count=count, start_at=start_at):
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)  # open-loop pacing: changes are due at fixed times, whatever the replies do
        else:
            behind += 1
        if statuses[order_id] not in FORWARD:  # delivered: walk the path again
            orders_reset([order_id])
            statuses[order_id] = OrderStatus.PENDING_PAYMENT
        to_status = FORWARD[statuses[order_id]]
        commits.append(change_recording_commit(order_id, to_status, pattern=pattern))
        statuses[order_id] = to_status
    return {
        "commits": commits,
        "behind": behind,
        "cpu_seconds": time.process_time() - cpu_started,
        "elapsed": time.time() - start_at,
    }


def main() -> None:
    publishing_loop_enable()  # as the Celery worker does (celery_app.py)
    stamp_publishes()
    stamp_commits()
    _reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        match command.pop("cmd"):
            case "run":
                _reply(run(**command))
            case "close":
                return
            case other:
                _reply({"error": f"unknown command {other!r}"})


def _reply(reply: dict) -> None:
    _replies.write(json.dumps(reply) + "\n")
    _replies.flush()


if __name__ == "__main__":
    main()
