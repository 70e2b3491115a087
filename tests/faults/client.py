"""The page's live client, in Python: reconnects with backoff, resumes with ?after=, dedups by seq.

Fault tests run many of these against real servers and then compare what each one
delivered with what the database says was committed for its user.
"""

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from django.db import connections
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from notifications.models import Notification
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.factories import UserFactory, place_order
from tests.live.servers import in_own_thread

STOP_CODES = {4401, 4403}
RESTART_CODES = {1012, 4001}  # as static/js/connection.js: back from the first backoff step


@dataclass
class ResilientClient:
    """One browser tab: keeps a socket open to one of `servers`, whatever happens to them."""

    servers: list  # WebServer objects; a reconnect moves on to the next one
    session_id: str
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    last_seq: int = 0
    delivered: list[int] = field(default_factory=list)  # seqs shown to the user, in order
    delivered_times: list[float] = field(default_factory=list)  # time.monotonic() of each, beside it
    hello_times: list[float] = field(default_factory=list)  # time.monotonic() of each fully set-up socket
    frames_with_seq: int = 0  # every notification frame received, duplicates included
    close_codes: list[int | None] = field(default_factory=list)
    close_times: list[float] = field(default_factory=list)  # time.monotonic() of each close, beside its code
    connects: int = 0
    handshake_failures: Counter = field(default_factory=Counter)  # HTTP status or error name -> count
    foreign_frames: list[dict] = field(default_factory=list)  # frames that are not this user's
    order_ids: set[int] = field(default_factory=set)  # orders this client heard about
    user_id: int | None = None
    stopped: bool = False
    _task: asyncio.Task | None = None
    _server_index: int = 0

    def start(self) -> "ResilientClient":
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self.stopped = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    @property
    def duplicates(self) -> int:
        return self.frames_with_seq - len(self.delivered)

    async def _run(self) -> None:
        attempt = 0
        while not self.stopped:
            server = self.servers[self._server_index % len(self.servers)]
            try:
                async with connect(
                    f"{server.ws_url}?after={self.last_seq}",
                    origin=server.origin,
                    additional_headers={"Cookie": f"sessionid={self.session_id}"},
                    ping_interval=None,
                    open_timeout=10,
                    close_timeout=2,
                ) as socket:
                    self.connects += 1
                    try:
                        async for raw in socket:
                            frame = json.loads(raw)
                            if frame["type"] == "hello":
                                attempt = 0  # as the page does: only a fully set-up socket resets the backoff
                            self._handle(frame)
                    except ConnectionClosed:
                        pass
                    self.close_codes.append(socket.close_code)
                    self.close_times.append(time.monotonic())
                    if socket.close_code in STOP_CODES:
                        return
                    if socket.close_code in RESTART_CODES:
                        attempt = 0
            except InvalidStatus as refused:
                self.handshake_failures[refused.response.status_code] += 1
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as error:  # incl. closed mid-handshake
                self.handshake_failures[type(error).__name__] += 1
            # Full jitter, as static/js/connection.js does; then try the next server.
            self._server_index += 1
            await asyncio.sleep(random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt)))
            attempt += 1

    def _handle(self, frame: dict) -> None:
        if frame["type"] == "hello":
            self.hello_times.append(time.monotonic())
            if self.user_id is None:
                self.user_id = frame["user_id"]
            elif frame["user_id"] != self.user_id:
                self.foreign_frames.append(frame)
        elif frame["type"] == "order_changed":
            self.foreign_frames.append(frame)  # staff-only news on a customer's socket
        elif frame["type"] == "reset":
            raise AssertionError("fault tests keep within the replayable backlog; a reset means history was lost")
        elif frame["type"] == "notification":
            self.frames_with_seq += 1
            self.order_ids.add(frame["order"]["id"])
            if frame["seq"] <= self.last_seq:
                return
            self.last_seq = frame["seq"]
            self.delivered.append(frame["seq"])
            self.delivered_times.append(time.monotonic())


def delivery_figures(clients, *, committed: int) -> dict:
    """What a fault test records of its clients: committed vs shown once, and how the sockets went."""
    clients = list(clients)
    delivered = sum(len(c.delivered) for c in clients)
    return {
        "notifications_committed": committed,
        "notifications_delivered": delivered,
        "lost": committed - delivered,
        "duplicate_frames_dropped_by_seq": sum(c.duplicates for c in clients),
        "reconnects": sum(c.connects for c in clients) - len(clients),
        "close_codes": sorted({code for c in clients for code in c.close_codes}, key=str),
    }


def customers_with_sessions(count: int):
    """`count` customers with a paid order each (notification seq 1) and a session the servers accept."""
    customers = [UserFactory() for _ in range(count)]
    orders = {c.pk: place_order(customer=c, status=OrderStatus.PAID) for c in customers}
    return orders, sessions_for(customers)


def sessions_for(customers) -> dict[int, str]:
    """A session the servers accept for each customer, by id: the cookie a logged-in browser holds."""
    sessions = {}
    for customer in customers:
        client = Client()
        client.force_login(customer)
        sessions[customer.pk] = client.cookies["sessionid"].value
    return sessions


def clients_behind(clients: dict, expected: dict[int, list[int]], start_seqs: dict[int, list[int]]) -> dict:
    """Each client (by user id) that has not yet shown exactly its user's seqs committed after the start: what it
    should have, what it has, and how its sockets went. Empty once every client has caught up."""
    return {
        pk: {"expected": expected[pk][len(start_seqs[pk]) :], "delivered": c.delivered, "closes": c.close_codes,
             "connects": c.connects, "failures": dict(c.handshake_failures)}
        for pk, c in clients.items()
        if c.delivered != expected[pk][len(start_seqs[pk]) :]
    }  # fmt: skip


async def wait_until(predicate, *, deadline: float, interval: float = 0.1, describe=None) -> float:
    """Poll `predicate` until true; return how long it took. Fails after `deadline` seconds."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"condition not met within {deadline}s" + (f": {describe()}" if describe else ""))
        await asyncio.sleep(interval)
    return time.monotonic() - start


def wait_until_sync(predicate, *, deadline: float, interval: float = 0.1, describe=None) -> float:
    """wait_until for synchronous tests (ones that use the database directly)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"condition not met within {deadline}s" + (f": {describe()}" if describe else ""))
        time.sleep(interval)
    return time.monotonic() - start


async def wait_until_async(predicate, *, deadline: float, interval: float = 0.2) -> float:
    """Like wait_until, for a predicate that must be awaited (a database check in a thread)."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"condition not met within {deadline}s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


async def in_thread(function, /, *args, **kwargs):
    """`in_own_thread` for async tests: database code off the event loop, its connection closed after."""
    return await asyncio.to_thread(in_own_thread, function, *args, **kwargs)


class ChangeStream(threading.Thread):
    """Moves orders through `plan` ((order id, status) pairs) at a steady pace, as staff and tasks would."""

    def __init__(self, plan, *, interval: float):
        super().__init__(daemon=True)
        self.plan = list(plan)
        self.interval = interval
        self.committed = 0
        self.errors: list[Exception] = []

    def run(self):
        try:
            for order_id, status in self.plan:
                try:
                    order_transition(order_id=order_id, to_status=status)
                    self.committed += 1
                except Exception as error:  # recorded and asserted on
                    self.errors.append(error)
                time.sleep(self.interval)  # the pace of the stream, not synchronisation
        finally:
            connections.close_all()


def seqs_by_user() -> dict[int, list[int]]:
    """Every user's notification seqs as the database holds them, in order: what each client must end with."""
    result: dict[int, list[int]] = {}
    for recipient_id, seq in Notification.objects.order_by("recipient_id", "seq").values_list("recipient_id", "seq"):
        result.setdefault(recipient_id, []).append(seq)
    return result
