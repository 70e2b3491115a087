"""The page's live client, in Python: reconnects with backoff, resumes with ?after=, dedups by seq.

Fault tests run many of these against real servers and then compare what each one
delivered with what the database says was committed for its user.
"""

import asyncio
import json
import random
import threading
import time
import uuid
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
                            if frame["type"] == "hello":
                                await self._set_up(socket)
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

    async def _set_up(self, socket) -> None:
        """What the page sends on each new socket once it is set up: nothing more, for notifications."""

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


@dataclass
class ChatView:
    """One support conversation as the page shows it: each message once, by seq, in order."""

    opened: int = 0  # chat.opened frames received: one per socket that watched it
    opened_after: list[int] = field(default_factory=list)  # the `after` of each chat.open sent
    last_seq: int = 0  # the last seq shown: the `after` of the next chat.open
    shown: list[int] = field(default_factory=list)  # seqs shown, in order
    bodies: dict[int, str] = field(default_factory=dict)
    frames: list[tuple[int, str, int]] = field(default_factory=list)  # (socket number, type, seq) of each chat frame
    dropped: int = 0  # chat.message frames for a seq already shown: the server should never send one
    acks_of_shown: int = 0  # chat.sent for a seq already shown: a retried send whose message the backlog delivered
    gaps: int = 0  # chat.message frames whose previous_seq was past the last seq shown: the protocol says never


@dataclass
class ChatClient(ResilientClient):
    """A page showing support conversations (`orders`), in Python, as the page must behave across reconnects.

    On every new socket it opens each conversation again with `after` = the last seq it shows, then sends again
    every message not yet acknowledged by a `chat.sent`, with its client_id, in the order the user wrote them.
    A message is shown once, by seq: from a `chat.message` or from the `chat.sent` that takes its place; a
    `chat.sent` for a seq already shown (the retry of a send stored before a crash, which the re-opened backlog
    delivered first) only acknowledges the send.
    """

    orders: list[int] = field(default_factory=list)
    views: dict[int, ChatView] = field(default_factory=dict)
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)  # client_id -> (order, body), oldest first
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> the seq its chat.sent gave the message
    written: list[str] = field(default_factory=list)  # client_ids in the order the user wrote them
    sends: Counter = field(default_factory=Counter)  # client_id -> chat.send frames sent with it
    errors: list[dict] = field(default_factory=list)
    _socket: object = None  # the set-up socket the composer sends on; None while there is none

    def __post_init__(self):
        self.views = {order: ChatView() for order in self.orders}

    @property
    def resent(self) -> int:
        """chat.send frames sent again with a client_id already sent: the retries."""
        return sum(count - 1 for count in self.sends.values())

    async def write(self, order_id: int, body: str) -> str:
        """The user sends a message: now if a socket is set up, else on the next one; its client_id."""
        client_id = str(uuid.uuid4())
        self.pending[client_id] = (order_id, body)
        self.written.append(client_id)
        if self._socket is not None:
            try:
                await self._chat_send(self._socket, client_id)
            except ConnectionClosed:
                pass  # still pending: sent again on the next socket
        return client_id

    async def _chat_send(self, socket, client_id: str) -> None:
        order_id, body = self.pending[client_id]
        self.sends[client_id] += 1
        await socket.send(json.dumps({"type": "chat.send", "order": order_id, "body": body, "client_id": client_id}))

    async def _set_up(self, socket) -> None:
        self._socket = None
        for order_id, view in self.views.items():
            view.opened_after.append(view.last_seq)
            await socket.send(json.dumps({"type": "chat.open", "order": order_id, "after": view.last_seq}))
        # The socket handles them in turn: each backlog comes before the answers to the retries.
        sent_here = set()
        while todo := [client_id for client_id in self.pending if client_id not in sent_here]:
            for client_id in todo:  # one written meanwhile joins the end, so the user's order is kept
                await self._chat_send(socket, client_id)
                sent_here.add(client_id)
        self._socket = socket

    def _handle(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "error":
            self.errors.append(frame)
        elif kind == "chat.opened":
            view = self.views[frame["order"]]
            if frame["reset"] or frame["truncated"]:
                raise AssertionError(f"a page that kept its last seq is never reset or truncated: {frame}")
            view.opened += 1
            view.frames.append((self.connects, kind, frame["last_seq"]))
        elif kind == "chat.message":
            view, message = self.views[frame["order"]], frame["message"]
            view.frames.append((self.connects, kind, message["seq"]))
            if message["seq"] <= view.last_seq:
                view.dropped += 1
                return
            if frame["previous_seq"] > view.last_seq:
                view.gaps += 1
            self._show(view, message)
        elif kind == "chat.sent":
            view, message = self.views[frame["order"]], frame["message"]
            view.frames.append((self.connects, kind, message["seq"]))
            self.pending.pop(frame["client_id"], None)
            self.acked[frame["client_id"]] = message["seq"]
            if message["seq"] > view.last_seq:
                self._show(view, message)
            else:
                view.acks_of_shown += 1
        elif not kind.startswith("chat."):
            super()._handle(frame)

    @staticmethod
    def _show(view: ChatView, message: dict) -> None:
        view.last_seq = message["seq"]
        view.shown.append(message["seq"])
        view.bodies[message["seq"]] = message["body"]


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
