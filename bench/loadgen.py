"""One load-generator process: thousands of logged-in browser tabs on one event loop.

bench/run.py starts several of these (one core cannot drive 10,000 sockets and parse
their frames) and drives them over stdin/stdout, one JSON object per line:

    {"cmd": "connect", "clients": [[user_id, session_key, ws_url, origin], ...], "concurrency": 100}
    {"cmd": "stats"}      -> sockets open, close codes seen, this process's CPU seconds
    {"cmd": "collect"}    -> the notification frames received since the last collect
    {"cmd": "close"}      -> closes every socket and exits

Each client behaves like static/js/live.js on its first connect: the session cookie,
the site's Origin, permessage-deflate offered as browsers do, no client pings (browsers
send none), and it counts as connected only once the server's `hello` arrived.
"""

import asyncio
import json
import resource
import sys
import time
from collections import Counter

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HANDSHAKE_TIMEOUT = 60


class LoadGenerator:
    def __init__(self):
        self.sockets: dict[int, object] = {}  # user_id -> open socket
        self.readers: set[asyncio.Task] = set()
        self.close_codes: Counter = Counter()
        self.received: list[list] = []  # [user_id, order_id, order_version, seq, received_at]
        self.foreign: list[dict] = []  # frames that are not the client's own user's

    async def connect(self, clients: list[list], concurrency: int) -> dict:
        gate = asyncio.Semaphore(concurrency)
        failures: Counter = Counter()
        failed: list[int] = []
        handshake_seconds: list[float] = []

        async def one(user_id: int, session_key: str, url: str, origin: str) -> None:
            async with gate:
                if not await attempt(user_id, session_key, url, origin):
                    failed.append(user_id)

        async def attempt(user_id: int, session_key: str, url: str, origin: str) -> bool:
            started = time.monotonic()
            try:
                socket = await connect(
                    url,
                    origin=origin,
                    additional_headers={"Cookie": f"sessionid={session_key}"},
                    ping_interval=None,
                    open_timeout=HANDSHAKE_TIMEOUT,
                    max_queue=None,
                )
                hello = json.loads(await asyncio.wait_for(socket.recv(), HANDSHAKE_TIMEOUT))
            except InvalidStatus as refused:
                failures[f"http_{refused.response.status_code}"] += 1
                return False
            except TimeoutError:
                failures["timeout"] += 1
                return False
            except ConnectionClosed as closed:
                failures[f"closed_{closed.rcvd.code if closed.rcvd else 1006}"] += 1
                return False
            except (OSError, InvalidHandshake) as error:  # refused, reset, or closed mid-handshake
                failures[type(error).__name__] += 1
                return False
            handshake_seconds.append(time.monotonic() - started)
            if hello.get("type") != "hello" or hello.get("user_id") != user_id:
                self.foreign.append(hello)
            self.sockets[user_id] = socket
            reader = asyncio.create_task(self._read(user_id, socket))
            self.readers.add(reader)
            reader.add_done_callback(self.readers.discard)
            return True

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

    async def _read(self, user_id: int, socket) -> None:
        try:
            async for raw in socket:
                received_at = time.time()
                frame = json.loads(raw)
                if frame["type"] == "notification":
                    order = frame["order"]
                    self.received.append([user_id, order["id"], order["version"], frame["seq"], received_at])
                elif frame["type"] in ("order_changed", "hello"):
                    self.foreign.append(frame)  # staff news, or a second hello, on a customer's socket
        except ConnectionClosed:
            pass
        finally:
            self.sockets.pop(user_id, None)
            self.close_codes[socket.close_code] += 1

    def stats(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "open": len(self.sockets),
            "close_codes": {str(code): count for code, count in self.close_codes.items()},
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
        }

    def collect(self) -> dict:
        received, self.received = self.received, []
        foreign, self.foreign = self.foreign, []
        return {"received": received, "foreign": foreign}

    async def close(self) -> dict:
        sockets = list(self.sockets.values())
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        return {"closed": len(sockets)}


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
            case "stats":
                reply = generator.stats()
            case "collect":
                reply = generator.collect()
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
