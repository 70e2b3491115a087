"""One load-generator process: thousands of logged-in browser tabs on one event loop.

bench/run.py starts several of these (one core cannot drive 10,000 sockets and parse
their frames) and drives them over stdin/stdout, one JSON object per line:

    {"cmd": "connect", "clients": [[user_id, session_key, ws_url, origin], ...], "concurrency": 100}
    {"cmd": "reconnect_to", "targets": [[ws_url, origin], ...]}
                          -> from now on a dropped socket comes back like the page's
    {"cmd": "stats"}      -> sockets open, close codes seen, reconnects, this process's CPU seconds
    {"cmd": "collect"}    -> the notification frames received since the last collect
    {"cmd": "acks", "on": true}
                          -> from now on every client acknowledges what it receives, as the page does
    {"cmd": "churn", "rate": 10.0}
                          -> from now on `rate` sockets a second, at random, close as a tab does (1000) and, with
                             `reconnect_to` given, come back; a rate of 0 stops it
    {"cmd": "chat_open", "watches": [[user_id, order_id], ...]}
                          -> each of those sockets sends `chat.open` (after 0) and waits for its `chat.opened`
    {"cmd": "chat_run", "sends": [[due_at, user_id, order_id, client_id], ...]}
                          -> from now on, in the background, each socket sends its `chat.send` when due
    {"cmd": "chat_collect"}
                          -> the chat frames since the last collect: sends made, `chat.sent` acks, `chat.message`s
    {"cmd": "close"}      -> closes every socket and exits

Each client behaves like static/js/connection.js on its first connect: the session cookie,
the site's Origin, permessage-deflate offered as browsers do, no client pings (browsers
send none), and it counts as connected only once the server's `hello` arrived. After
`reconnect_to`, a socket the server drops comes back as the page's does: exponential
backoff with full jitter (connection.js's base and cap), to the next target, resuming with
?after=<last seq>; only a `hello` resets the backoff. As the page, a client takes the `hello`'s `last_seq`
on its first socket only (and after a `reset`): a resumed socket's replay starts from the client's own. After
`acks`, each client sends the page's delivery receipt for every notification it receives (a visible tab's):
`{"type": "ack", "seq": N}` at once, then at most one per ACK_INTERVAL for what came meanwhile.

A client connected as staff (a fifth element, true, in `connect`) hears every order's `order_changed` as the staff
pages do: counted, not foreign. The chat commands drive the support conversation (bench/chat.py): a message's
body carries its client_id, so whoever receives it can say which send it was.
"""

import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HANDSHAKE_TIMEOUT = 60
# static/js/connection.js: BACKOFF_BASE_MS, BACKOFF_CAP_MS and STOP_CODES.
PAGE_BACKOFF_BASE = 0.5
PAGE_BACKOFF_CAP = 30.0
PAGE_STOP_CODES = {4401, 4403}
ACK_INTERVAL = 1.0  # static/js/connection.js: ACK_INTERVAL_MS
# Between one socket's `chat.open`s: well under its limit (10 a second), counted as the server handles them.
CHAT_OPEN_INTERVAL = 0.25
CHAT_BODY = "bench message "  # then the send's client_id: the receiver's way to say which send it got


class HandshakeFailed(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class LoadGenerator:
    def __init__(self):
        self.sockets: dict[int, object] = {}  # user_id -> open socket
        self.readers: set[asyncio.Task] = set()
        self.comebacks: set[asyncio.Task] = set()  # clients backing off to reconnect
        self.close_codes: Counter = Counter()
        self.received: list[list] = []  # [user_id, order_id, order_version, seq, received_at]
        self.foreign: list[dict] = []  # frames that are not the client's own user's
        self.sessions: dict[int, str] = {}  # user_id -> session key
        self.last_seq: dict[int, int] = {}  # user_id -> newest seq received, for ?after=
        self.reconnect_targets: list[list] = []  # [[ws_url, origin], ...]; empty: a dropped socket stays down
        self.reconnecting: set[int] = set()  # users whose socket dropped and is not back yet
        self.reconnects = 0
        self.reconnect_failures: Counter = Counter()
        self.closing = False
        self.acking = False
        self.shown: dict[int, int] = {}  # user_id -> newest seq received while acking
        self.acked: dict[int, int] = {}  # user_id -> newest seq acknowledged
        self.ackers: dict[int, asyncio.Task] = {}  # user_id -> its ack and the interval after it
        self.acks_sent = 0
        self.churner: asyncio.Task | None = None
        self.churned = 0  # sockets this client side closed on purpose
        self.resets = 0  # `reset` frames: what was missed could not be replayed
        self.hello_last_seq: dict[int, int] = {}  # user_id -> last_seq of the hello of its current socket
        self.staff: set[int] = set()  # users connected as staff: `order_changed` is their own news
        self.staff_news = 0  # `order_changed` frames staff sockets received
        self.chat_opened: set[tuple[int, int]] = set()  # (user_id, order_id) whose `chat.opened` arrived
        self.chat_sends: list[list] = []  # [client_id, user_id, sent_at]; sent_at None: the socket was gone
        self.chat_acks: list[list] = []  # [client_id, user_id, received_at] of each `chat.sent`
        self.chat_received: list[list] = []  # [user_id, order_id, seq, client_id, received_at] of each `chat.message`
        self.chat_errors: Counter = Counter()  # error frames by code, while chatting
        self.chat_late = 0  # sends made after they were due (this process could not keep up)
        self.chatter: asyncio.Task | None = None

    async def connect(self, clients: list[list], concurrency: int) -> dict:
        gate = asyncio.Semaphore(concurrency)
        failures: Counter = Counter()
        failed: list[int] = []
        handshake_seconds: list[float] = []

        async def one(user_id: int, session_key: str, url: str, origin: str, staff: bool = False) -> None:
            self.sessions[user_id] = session_key
            if staff:
                self.staff.add(user_id)
            async with gate:
                started = time.monotonic()
                try:
                    socket, hello = await self._handshake(user_id, url, origin)
                except HandshakeFailed as failure:
                    failures[failure.kind] += 1
                    failed.append(user_id)
                    return
                handshake_seconds.append(time.monotonic() - started)
                self._track(user_id, socket, hello)

        started = time.time()
        await asyncio.gather(*(one(*client) for client in clients))
        return {
            "started": started,
            "finished": time.time(),
            "connected": len(handshake_seconds),
            "failures": dict(failures),
            "failed_user_ids": failed,
            "handshake_seconds": handshake_seconds,
        }

    async def _open(self, user_id: int, url: str, origin: str) -> tuple[object, dict]:
        """One handshake, done once the server's hello arrived."""
        socket = None
        try:
            socket = await connect(
                url,
                origin=origin,
                additional_headers={"Cookie": f"sessionid={self.sessions[user_id]}"},
                ping_interval=None,
                open_timeout=HANDSHAKE_TIMEOUT,
                max_queue=None,
            )
            hello = json.loads(await asyncio.wait_for(socket.recv(), HANDSHAKE_TIMEOUT))
        except BaseException:
            if socket is not None:  # open, but no hello: do not leave it behind
                await asyncio.shield(socket.close())
            raise
        return socket, hello

    async def _handshake(self, user_id: int, url: str, origin: str) -> tuple[object, dict]:
        """`_open`, with its failures told apart for the report."""
        try:
            return await self._open(user_id, url, origin)
        except InvalidStatus as refused:
            raise HandshakeFailed(f"http_{refused.response.status_code}") from None
        except TimeoutError:
            raise HandshakeFailed("timeout") from None
        except ConnectionClosed as closed:
            raise HandshakeFailed(f"closed_{closed.rcvd.code if closed.rcvd else 1006}") from None
        except (OSError, InvalidHandshake) as error:  # refused, reset, or closed mid-handshake
            raise HandshakeFailed(type(error).__name__) from None

    def _track(self, user_id: int, socket, hello: dict) -> None:
        if hello.get("type") != "hello" or hello.get("user_id") != user_id:
            self.foreign.append(hello)
        elif isinstance(hello.get("last_seq"), int):
            self.hello_last_seq[user_id] = hello["last_seq"]
            # As the page does: a first socket starts where the server is; a resumed one's replay is still to come.
            self.last_seq.setdefault(user_id, hello["last_seq"])
        self.sockets[user_id] = socket
        _spawn(self._read(user_id, socket), self.readers)

    async def _come_back(self, user_id: int) -> None:
        """What the page does when its socket drops: back off, reconnect to the next target, resume."""
        attempt = 0
        while True:
            await asyncio.sleep(random.uniform(0, min(PAGE_BACKOFF_CAP, PAGE_BACKOFF_BASE * 2**attempt)))
            url, origin = self.reconnect_targets[attempt % len(self.reconnect_targets)]
            attempt += 1
            try:
                socket, hello = await self._handshake(user_id, f"{url}?after={self.last_seq.get(user_id, 0)}", origin)
            except HandshakeFailed as failure:
                self.reconnect_failures[failure.kind] += 1
                if failure.kind in {f"closed_{code}" for code in PAGE_STOP_CODES}:
                    return  # signed out: the page stops retrying (and this client never counts as back)
                continue
            self.reconnects += 1
            self.reconnecting.discard(user_id)
            self._track(user_id, socket, hello)
            return

    async def _read(self, user_id: int, socket) -> None:
        try:
            async for raw in socket:
                received_at = time.time()
                frame = json.loads(raw)
                if frame["type"] == "notification":
                    order = frame["order"]
                    self.received.append([user_id, order["id"], order["version"], frame["seq"], received_at])
                    self.last_seq[user_id] = max(self.last_seq.get(user_id, 0), frame["seq"])
                    if self.acking:
                        self._shown(user_id, socket, frame["seq"])
                elif frame["type"] == "reset":  # as the page does: carry on from the hello's seq
                    self.resets += 1
                    self.last_seq[user_id] = max(self.last_seq.get(user_id, 0), self.hello_last_seq.get(user_id, 0))
                elif frame["type"] == "order_changed" and user_id in self.staff:
                    self.staff_news += 1
                elif frame["type"] in ("order_changed", "hello"):
                    self.foreign.append(frame)  # staff news, or a second hello, on a customer's socket
                elif frame["type"].startswith("chat.") or frame["type"] == "error":
                    self._chat_frame(user_id, frame, received_at)
        except ConnectionClosed:
            pass
        finally:
            self.sockets.pop(user_id, None)
            self.close_codes[socket.close_code] += 1
            if self.reconnect_targets and not self.closing and socket.close_code not in PAGE_STOP_CODES:
                self.reconnecting.add(user_id)
                _spawn(self._come_back(user_id), self.comebacks)

    def _shown(self, user_id: int, socket, seq: int) -> None:
        self.shown[user_id] = max(self.shown.get(user_id, 0), seq)
        if user_id not in self.ackers:
            self.ackers[user_id] = asyncio.create_task(self._acknowledge(user_id, socket))

    async def _acknowledge(self, user_id: int, socket) -> None:
        """The page's receipts: one ack of everything shown, then none for ACK_INTERVAL (connection.js's sendAck)."""
        try:
            while self.shown[user_id] > self.acked.get(user_id, 0):
                seq = self.shown[user_id]
                await socket.send(json.dumps({"type": "ack", "seq": seq}))
                self.acked[user_id] = seq
                self.acks_sent += 1
                await asyncio.sleep(ACK_INTERVAL)
        except ConnectionClosed:
            pass
        finally:
            del self.ackers[user_id]  # no await since the last look at `shown`: nothing shown is left unacked

    def _chat_frame(self, user_id: int, frame: dict, received_at: float) -> None:
        match frame["type"]:
            case "chat.message":
                message = frame["message"]
                self.chat_received.append(
                    [user_id, frame["order"], message["seq"], message["body"].removeprefix(CHAT_BODY), received_at]
                )
            case "chat.sent":
                self.chat_acks.append([frame["client_id"], user_id, received_at])
            case "chat.opened":
                self.chat_opened.add((user_id, frame["order"]))
            case "error":
                self.chat_errors[frame["code"]] += 1

    async def chat_open(self, watches: list[list]) -> dict:
        """Each socket opens its conversations as a page does (after 0); done once every `chat.opened` came."""
        wanted = {(user_id, order_id) for user_id, order_id in watches}
        by_user: dict[int, list[int]] = {}
        for user_id, order_id in watches:
            by_user.setdefault(user_id, []).append(order_id)

        async def opens(user_id: int, order_ids: list[int]) -> None:
            for order_id in order_ids:
                if socket := self.sockets.get(user_id):
                    await socket.send(json.dumps({"type": "chat.open", "order": order_id, "after": 0}))
                await asyncio.sleep(CHAT_OPEN_INTERVAL)

        await asyncio.gather(*(opens(user_id, order_ids) for user_id, order_ids in by_user.items()))
        end = time.monotonic() + HANDSHAKE_TIMEOUT
        while not wanted <= self.chat_opened and time.monotonic() < end:
            await asyncio.sleep(0.05)  # polled with a deadline: the answers come on the sockets' readers
        return {"opened": len(wanted & self.chat_opened), "errors": dict(self.chat_errors)}

    def chat_run(self, sends: list[list]) -> None:
        """From now on send each `chat.send` when due, in the background (open-loop, as the triggers pace)."""
        if self.chatter is not None:
            self.chatter.cancel()
        self.chatter = asyncio.create_task(self._chat_run(sends))

    async def _chat_run(self, sends: list[list]) -> None:
        for due, user_id, order_id, client_id in sends:
            pause = due - time.time()
            if pause > 0:
                await asyncio.sleep(pause)
            else:
                self.chat_late += 1
            socket = self.sockets.get(user_id)
            if socket is None:
                self.chat_sends.append([client_id, user_id, None])
                continue
            frame = {"type": "chat.send", "order": order_id, "body": CHAT_BODY + client_id, "client_id": client_id}
            sent = [client_id, user_id, time.time()]
            self.chat_sends.append(sent)
            try:
                await socket.send(json.dumps(frame))
            except ConnectionClosed:
                sent[2] = None

    def chat_collect(self) -> dict:
        sends, self.chat_sends = self.chat_sends, []
        acks, self.chat_acks = self.chat_acks, []
        received, self.chat_received = self.chat_received, []
        errors, self.chat_errors = dict(self.chat_errors), Counter()
        late, self.chat_late = self.chat_late, 0
        running = self.chatter is not None and not self.chatter.done()
        return {"sends": sends, "acks": acks, "received": received, "errors": errors, "late": late,
                "running": running}  # fmt: skip

    def churn(self, rate: float) -> None:
        """From now on close `rate` random sockets a second, as tabs closing do; 0 stops it."""
        if self.churner is not None:
            self.churner.cancel()
            self.churner = None
        if rate > 0:
            self.churner = asyncio.create_task(self._churn(rate))

    async def _churn(self, rate: float) -> None:
        closing: set[asyncio.Task] = set()
        next_at = time.monotonic()
        while True:
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # open-loop pacing, as the triggers'
            if self.sockets:
                # Out of `sockets` at once, so it is not picked twice; its reader brings it back (_read, _come_back).
                socket = self.sockets.pop(random.choice(list(self.sockets)))
                self.churned += 1
                _spawn(socket.close(), closing)

    def stats(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "open": len(self.sockets),
            "close_codes": {str(code): count for code, count in self.close_codes.items()},
            "reconnects": self.reconnects,
            "reconnecting": len(self.reconnecting),
            "reconnect_failures": dict(self.reconnect_failures),
            "acks_sent": self.acks_sent,
            "acks_pending": len(self.ackers),
            "churned": self.churned,
            "resets": self.resets,
            "staff_news": self.staff_news,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
        }

    def collect(self) -> dict:
        received, self.received = self.received, []
        foreign, self.foreign = self.foreign, []
        return {"received": received, "foreign": foreign}

    async def close(self) -> dict:
        self.closing = True
        self.churn(0)
        if self.chatter is not None:
            self.chatter.cancel()
        for task in [*self.comebacks, *self.ackers.values()]:
            task.cancel()
        sockets = list(self.sockets.values())
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        return {"closed": len(sockets)}


def _spawn(coroutine, tasks: set) -> None:
    """Run `coroutine` as a task, held in `tasks` until it is done (the loop keeps only weak references)."""
    task = asyncio.create_task(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def main() -> None:
    generator = LoadGenerator()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=2**30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = json.loads(line)
        match command.pop("cmd"):
            case "connect":
                reply = await generator.connect(**command)
            case "reconnect_to":
                generator.reconnect_targets = command["targets"]
                reply = {}
            case "stats":
                reply = generator.stats()
            case "collect":
                reply = generator.collect()
            case "acks":
                generator.acking = command["on"]
                reply = {}
            case "churn":
                generator.churn(command["rate"])
                reply = {}
            case "chat_open":
                reply = await generator.chat_open(**command)
            case "chat_run":
                generator.chat_run(**command)
                reply = {}
            case "chat_collect":
                reply = generator.chat_collect()
            case "close":
                reply = await generator.close()
                _reply(reply)
                return
            case other:
                reply = {"error": f"unknown command {other!r}"}
        _reply(reply)


def _reply(reply: dict) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
