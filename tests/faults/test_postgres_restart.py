"""Fault 5: PostgreSQL stops (fast shutdown) for 12 seconds and comes back while the shop is busy.

Customers check out through the real web server, staff move orders along in the admin, the
worker walks every new order from payment to delivery, and each customer's tab is connected.
At the stop, one staff save is held inside its transaction (order and event written, the
notification not yet). The database is a private server (tests/postgres_server.py): the
machine's shared one is never stopped. Run with the default connection pool and with
persistent per-thread connections instead. What must hold:

- that save, and every request caught by the outage, fails with the plain 500 page (nothing
  of the error leaks, no 4xx) and the web process stays up;
- nothing is half-written: an order's status is its last event's, every status change has
  exactly one notification, and each customer's seqs have no gaps;
- once PostgreSQL is back, the same web process serves pages and sockets and the same worker
  runs tasks, within a deadline, with no restart;
- every committed notification reaches its customer's tab exactly once.
"""

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from django.db import DatabaseError, connections, transaction
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from notifications.models import Notification, NotificationCounter
from orders.models import Order, OrderEvent, OrderEventType, OrderItem, OrderStatus
from shop.models import Product
from tests.conftest import requires_postgres, requires_redis
from tests.factories import CHECKOUT_ADDRESS, ProductFactory, StaffFactory, UserFactory, place_order
from tests.faults.client import (
    ResilientClient,
    clients_behind,
    delivery_figures,
    in_thread,
    seqs_by_user,
    wait_until,
    wait_until_async,
)
from tests.faults.conftest import record
from tests.live.clients import Browser, form_fields
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

CUSTOMERS = 4
STAFF_ORDERS_EACH = 3  # paid orders per customer that staff walk through the admin
STOCK = 100_000
CHECKOUT_PACE = 0.8  # seconds between one customer's checkouts
STAFF_PACE = 0.1  # seconds between staff saves
PROBE_INTERVAL = 0.1
OUTAGE_AFTER = 3.0  # the streams run this long on a healthy database first
# Longer than DATABASE_POOL_TIMEOUT (10 s): with the pool, a request that starts during the outage
# waits that long for a connection, so only a longer outage shows both fates (failed, and served late).
OUTAGE = 12.0
AFTER_RECOVERY = 3.0  # and this long once everything answers again
RECOVERY_DEADLINE = 60.0  # worst case: a task's retries back off for up to 2 + 4 + 8 + 16 s
# The worker walks each new order along quickly, so its tasks are in flight when the database stops.
SIMULATION = {"SIMULATE_ORDER_PROGRESS": "true", "PAYMENT_CONFIRMATION_DELAY": "0.3", "FULFILMENT_STEP_DELAY": "0.3"}
STAFF_NEXT = {
    OrderStatus.PAID: OrderStatus.PROCESSING,
    OrderStatus.PROCESSING: OrderStatus.SHIPPED,
    OrderStatus.SHIPPED: OrderStatus.DELIVERED,
    OrderStatus.DELIVERED: OrderStatus.REFUNDED,
}
# What must never reach a client: a traceback, or anything naming the database or its driver.
LEAKS = ("Traceback", 'File "', "psycopg", "OperationalError", "postgres", "connection refused")


@dataclass
class Exchange:
    label: str
    started: float
    ended: float
    outcome: str  # "ok", "HTTP 500", or what was wrong
    clean: bool


@dataclass
class HttpLog:
    """Every request the streams make, and whether it succeeded or failed cleanly."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def request(self, browser: Browser, label: str, method: str, url: str, *, expect: str | None = None, **kw):
        """The response if it succeeded (200, or 302 to `expect`); None if it failed (logged either way)."""
        headers = {"X-CSRFToken": browser.csrf_token or ""} if method == "POST" else {}
        started = time.monotonic()
        try:
            response = await browser.client.request(method, url, headers=headers, **kw)
        except httpx.TransportError as error:
            self.exchanges.append(Exchange(label, started, time.monotonic(), type(error).__name__, clean=False))
            return None
        ended = time.monotonic()
        location = response.headers.get("location", "")
        if (
            response.status_code == 200
            and method == "GET"
            or response.status_code == 302
            and expect
            and (location.startswith(expect))
        ):
            self.exchanges.append(Exchange(label, started, ended, "ok", clean=True))
            return response
        if response.status_code == 500:
            leaked = [marker for marker in LEAKS if marker.lower() in response.text.lower()]
            outcome = "HTTP 500" + (f" leaking {leaked}" if leaked else "")
            self.exchanges.append(Exchange(label, started, ended, outcome, clean=not leaked))
            return None
        # Anything else is wrong here: a form error, a redirect to the login page (a lost session), ...
        outcome = f"HTTP {response.status_code} {location} {response.text[:200]!r}"
        self.exchanges.append(Exchange(label, started, ended, outcome, clean=False))
        return None

    def failed(self, since: float = 0.0, until: float = float("inf")) -> list[Exchange]:
        return [e for e in self.exchanges if e.outcome != "ok" and since <= e.started < until]

    def first_ok(self, label: str, ended_after: float) -> Exchange | None:
        return next(
            (e for e in self.exchanges if e.label == label and e.outcome == "ok" and e.ended >= ended_after), None
        )


async def checkout_stream(browser: Browser, slug: str, log: HttpLog, stop: asyncio.Event) -> None:
    """A customer who keeps buying: add one item to the cart, check out."""
    while not stop.is_set():
        if await log.request(browser, "add to cart", "POST", f"/products/{slug}/add/", data={"quantity": "1"},
                             expect="/cart/"):  # fmt: skip
            await log.request(
                browser, "checkout", "POST", "/checkout/", data={**CHECKOUT_ADDRESS, "note": ""}, expect="/orders/"
            )
        await asyncio.sleep(CHECKOUT_PACE)  # the shopper's pace, not synchronisation


async def staff_stream(staff: Browser, order_ids: list[int], log: HttpLog, stop: asyncio.Event) -> None:
    """Staff walking paid orders to refunded in the admin change form, one step per save, round-robin."""
    pending = list(order_ids)
    while pending and not stop.is_set():
        order_id = pending.pop(0)
        url = f"/admin/orders/order/{order_id}/change/"
        page = await log.request(staff, "admin change form", "GET", url)
        if page is None:
            pending.append(order_id)
        else:
            data = form_fields(page.text, "order_form")
            next_status = STAFF_NEXT.get(data["status"])
            if next_status:
                data.update(status=next_status, _save="Save")
                await log.request(staff, "admin save", "POST", url, data=data, expect="/admin/orders/order/")
                pending.append(order_id)
        await asyncio.sleep(STAFF_PACE)  # the staff member's pace, not synchronisation


async def socket_attempt(server, session_id: str) -> str:
    """Open a socket as the page does: "hello" if it was set up, else how it failed."""
    try:
        async with connect(
            server.ws_url, origin=server.origin, additional_headers={"Cookie": f"sessionid={session_id}"},
            ping_interval=None, open_timeout=10, close_timeout=2,
        ) as socket:  # fmt: skip
            return json.loads(await asyncio.wait_for(socket.recv(), 10))["type"]
    except InvalidStatus as refused:
        return f"HTTP {refused.response.status_code}"
    except ConnectionClosed as closed:
        return f"close {closed.rcvd.code if closed.rcvd else None}"
    except (InvalidHandshake, OSError, TimeoutError) as error:
        # InvalidMessage: daphne dropped a handshake the application had not answered within its
        # --websocket_connect_timeout, e.g. while waiting for a database connection.
        return type(error).__name__


async def probe(web, browser: Browser, log: HttpLog, sockets: list, stop: asyncio.Event) -> None:
    """A page and a new socket, again and again: when the web process stops and starts answering."""
    while not stop.is_set():
        await log.request(browser, "probe page", "GET", "/orders/")
        started = time.monotonic()
        outcome = await socket_attempt(web, browser.session_id)
        sockets.append((started, time.monotonic(), outcome))
        await asyncio.sleep(PROBE_INTERVAL)  # the probe's pace, not synchronisation


class CounterLock(threading.Thread):
    """A long transaction holding one customer's notification counter row.

    Each change of that customer's orders then waits inside its own transaction with the order
    and its event written but no notification yet: exactly what must vanish whole if PostgreSQL
    stops under it. Only staff change that customer's orders, so whatever waits is a request.
    """

    def __init__(self, user_id: int):
        super().__init__(daemon=True)
        self.user_id = user_id
        self.locked, self.release = threading.Event(), threading.Event()
        self.backend_pid: int | None = None
        self.ended_by: str | None = None

    def run(self):
        try:
            with transaction.atomic():
                NotificationCounter.objects.select_for_update().get(user_id=self.user_id)
                with connections["default"].cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.backend_pid = cursor.fetchone()[0]
                self.locked.set()
                self.release.wait(RECOVERY_DEADLINE)
        except DatabaseError as error:  # PostgreSQL went away under the open transaction, as intended
            self.ended_by = type(error).__name__
        finally:
            connections.close_all()


def blocked_by(backend_pid: int) -> int:
    """How many backends wait for a lock that `backend_pid` holds (the saves CounterLock holds up)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [backend_pid])
        return cursor.fetchone()[0]


def shop_for(customers_count: int, servers_user):
    """Shoppers, and one more customer (the last) who only gets staff's changes; paid orders for staff."""
    customers = [servers_user(UserFactory()) for _ in range(customers_count + 1)]
    staff = servers_user(StaffFactory())
    product = ProductFactory(stock=STOCK)
    shelf = ProductFactory(stock=STOCK)  # staff's orders come from another product: easier stock sums
    staff_orders = [
        place_order(customer=customer, products=[shelf], status=OrderStatus.PAID).pk
        for customer in customers
        for _ in range(STAFF_ORDERS_EACH)
    ]
    return customers, staff, product, staff_orders


def half_written() -> list[str]:
    """Every way the database could show a change only partly made; empty when all is whole."""
    problems = []
    events: dict[int, list[OrderEvent]] = {}
    for event in OrderEvent.objects.order_by("order_id", "created_at", "pk"):
        events.setdefault(event.order_id, []).append(event)
    notified = Counter(
        (n.payload["order"]["id"], n.payload["order"]["status"], n.recipient_id) for n in Notification.objects.all()
    )
    status_changes = 0
    for order in Order.objects.prefetch_related("items"):
        history = events.get(order.pk, [])
        if not history or history[0].type != OrderEventType.PLACED or not order.items.all():
            problems.append(f"order {order.pk}: placed without its items or PLACED event")
            continue
        if history[-1].new_status != order.status:
            problems.append(f"order {order.pk} is {order.status} but its last event says {history[-1].new_status}")
        for before, after in zip(history, history[1:], strict=False):
            if after.old_status != before.new_status:
                problems.append(f"order {order.pk}: history breaks between event {before.pk} and {after.pk}")
        for event in history[1:]:
            status_changes += 1
            count = notified[(order.pk, event.new_status, order.customer_id)]
            if count != 1:
                problems.append(f"event {event.pk} ({order.pk} → {event.new_status}) has {count} notifications")
    if sum(notified.values()) != status_changes:
        problems.append(f"{sum(notified.values())} notifications for {status_changes} status changes")
    counters = dict(NotificationCounter.objects.values_list("user_id", "last_seq"))
    for user_id, seqs in seqs_by_user().items():
        if seqs != list(range(1, len(seqs) + 1)) or counters.get(user_id) != len(seqs):
            problems.append(f"user {user_id}: seqs {seqs}, counter {counters.get(user_id)}")
    for product in Product.objects.all():
        sold = sum(OrderItem.objects.filter(product=product).values_list("quantity", flat=True))
        if product.stock + sold != STOCK:
            problems.append(f"{product.slug}: stock {product.stock} + sold {sold} != {STOCK}")
    return problems


def first_worker_change_after(moment: datetime) -> datetime | None:
    """When the worker (a change with no actor) first committed a change after `moment`."""
    return (
        OrderEvent.objects.filter(type=OrderEventType.STATUS_CHANGED, actor=None, created_at__gte=moment)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def undelivered_checkouts(staff_orders: list[int]) -> int:
    return Order.objects.exclude(pk__in=staff_orders).exclude(status=OrderStatus.DELIVERED).count()


# How the processes hold their database connections. Either way a connection that the restart
# broke must be noticed (CONN_HEALTH_CHECKS) and replaced, never used for a request or a task.
HOLDING = {
    # The default: a process-wide pool, a connection checked out per request, task or socket call.
    "pool": {},
    # No pool, and connections kept for a minute by the thread that opened them.
    "persistent": {"DATABASE_POOL_MAX_SIZE": "0", "CONN_MAX_AGE": "60"},
}


@pytest.mark.parametrize("holding", HOLDING)
async def test_postgres_restart_fails_requests_cleanly_and_recovers_without_a_restart(
    postgres_cluster, private_postgres, servers_user, holding
):
    cluster = postgres_cluster
    cluster.env.update(SIMULATION, **HOLDING[holding])
    web = cluster.web()
    cluster.worker()
    cluster.beat()
    customers, staff_user, product, staff_orders = await in_thread(shop_for, CUSTOMERS, servers_user)
    start_seqs = await in_thread(seqs_by_user)

    browsers = [await Browser(web.base_url).login(customer.username) for customer in customers]
    shoppers, held_up = browsers[:-1], customers[-1]
    staff = await Browser(web.base_url).login(staff_user.username)
    clients = {
        c.pk: ResilientClient([web], b.session_id, last_seq=start_seqs[c.pk][-1]).start()
        for c, b in zip(customers, browsers, strict=True)
    }
    await wait_until(lambda: all(c.connects for c in clients.values()), deadline=20)

    log, sockets = HttpLog(), []
    stop_streams, stop_probe = asyncio.Event(), asyncio.Event()
    streams = [
        *(asyncio.create_task(checkout_stream(b, product.slug, log, stop_streams)) for b in shoppers),
        asyncio.create_task(staff_stream(staff, staff_orders, log, stop_streams)),
    ]
    prober = asyncio.create_task(probe(web, shoppers[0], log, sockets, stop_probe))
    await asyncio.sleep(OUTAGE_AFTER)  # let the streams run on a healthy database first

    # Hold one customer's changes mid-transaction, and wait until a staff save is stuck there.
    lock = CounterLock(held_up.pk)
    lock.start()
    await asyncio.to_thread(lock.locked.wait, 10)
    await wait_until_async(lambda: in_thread(lambda: blocked_by(lock.backend_pid) >= 1), deadline=30)

    stopping = time.monotonic()
    await asyncio.to_thread(private_postgres.stop)
    stopped = time.monotonic()
    lock.release.set()
    await asyncio.sleep(OUTAGE - (time.monotonic() - stopping))  # the outage itself
    await asyncio.to_thread(private_postgres.start)  # returns once it accepts connections
    back, back_wall = time.monotonic(), datetime.now(UTC)
    await asyncio.to_thread(lock.join, 10)

    def recovered():
        page = log.first_ok("probe page", ended_after=back)
        socket = next((ended for _, ended, outcome in sockets if ended >= back and outcome == "hello"), None)
        return page and socket and (page.ended - back, socket - back)

    await wait_until(recovered, deadline=RECOVERY_DEADLINE, describe=lambda: (log.failed(back)[-3:], sockets[-3:]))
    page_recovery, socket_recovery = recovered()
    await asyncio.sleep(AFTER_RECOVERY)  # more changes on the recovered database
    stop_streams.set()
    stop_probe.set()
    await asyncio.gather(*streams, prober)

    # The worker finishes every checkout's walk (its failed tasks retry with backoff).
    await wait_until_async(
        lambda: in_thread(lambda: undelivered_checkouts(staff_orders) == 0), deadline=RECOVERY_DEADLINE
    )
    worker_done_at = time.monotonic()
    first_worker_change = await in_thread(first_worker_change_after, back_wall)
    unpublished = Notification.objects.filter(published_at=None)
    await wait_until_async(lambda: in_thread(lambda: not unpublished.exists()), deadline=RECOVERY_DEADLINE)
    expected = await in_thread(seqs_by_user)

    def undelivered():
        return clients_behind(clients, expected, start_seqs)

    await wait_until(lambda: not undelivered(), deadline=RECOVERY_DEADLINE, describe=undelivered)
    problems = await in_thread(half_written)
    orders = await in_thread(lambda: Counter(Order.objects.values_list("status", flat=True)))
    for client in clients.values():
        await client.stop()
    for browser in [*browsers, staff]:
        await browser.aclose()

    committed = sum(len(expected[pk]) - len(start_seqs[pk]) for pk in clients)
    figures = delivery_figures(clients.values(), committed=committed)
    during = log.failed(stopping, back)
    in_flight = [e for e in log.exchanges if e.started < stopping < e.ended]
    worker_log = cluster.processes[1].log_text()
    record(
        f"postgres_restart_{holding}",
        connections=HOLDING[holding] or "default settings (pool)",
        outage_seconds=round(back - stopping, 2),
        fast_shutdown_seconds=round(stopped - stopping, 2),
        held_transaction_ended_by=lock.ended_by,
        http_requests=len(log.exchanges),
        http_in_flight_at_shutdown=[(e.label, e.outcome, round(e.ended - stopping, 2)) for e in in_flight],
        http_started_during_outage=len([e for e in log.exchanges if stopping <= e.started < back]),
        http_failed_during_outage=len(during),
        http_failed_outcomes=Counter(e.outcome for e in log.failed()),
        http_seconds_to_fail=sorted(round(e.ended - e.started, 1) for e in log.failed()),
        http_failed_after_postgres_back=len(log.failed(back)),
        unclean_http=[(e.label, e.outcome) for e in log.exchanges if not e.clean],
        socket_attempts_during_outage=Counter(o for started, _, o in sockets if stopping <= started < back),
        seconds_from_postgres_back_to_page_served=round(page_recovery, 2),
        seconds_from_postgres_back_to_socket_hello=round(socket_recovery, 2),
        seconds_from_postgres_back_to_worker_change=(
            round((first_worker_change - back_wall).total_seconds(), 2) if first_worker_change else None
        ),
        seconds_from_postgres_back_to_every_checkout_delivered=round(worker_done_at - back, 2),
        worker_task_retries=worker_log.count(" retry: Retry in "),
        orders_by_status=orders,
        **figures,
        half_written=problems,
    )
    for process in cluster.processes:
        process.check_running()  # the same web, worker and beat processes: nothing was restarted
    # The staff save held mid-transaction was cut off by the shutdown: a clean 500, nothing of it kept.
    assert ("admin save", "HTTP 500") in [(e.label, e.outcome) for e in in_flight]
    assert lock.ended_by is not None
    assert during, "no request failed during the outage: the test proved nothing"
    assert [e for e in log.exchanges if not e.clean] == []
    assert log.failed(back) == []  # everything sent after PostgreSQL was back succeeded
    assert problems == []
    assert committed == figures["notifications_delivered"]
    assert figures["duplicate_frames_dropped_by_seq"] == 0
    assert page_recovery < RECOVERY_DEADLINE and socket_recovery < RECOVERY_DEADLINE
    assert first_worker_change is not None
