"""Item 4 of issue 19: a deploy drains a web process: every socket closed with 1012, spread, then resumed."""

import asyncio
import signal
import socket
import time

from orders.models import OrderStatus
from orders.transitions import order_transition
from shop.drain import CANCEL_WAIT, CLOSE_SERVICE_RESTART, CLOSES_SHARE
from tests.conftest import requires_postgres, requires_redis
from tests.faults.client import ResilientClient, customers_with_sessions, delivery_figures, in_thread, wait_until
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis()]

CUSTOMERS = 100
DRAIN_SECONDS = 4.0
STATUSES = (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED)  # seqs 2, 3 and 4 of each customer
PRODUCE_SECONDS = 6.0  # the changes are spread over this, so the deploy lands in the middle of them


def produce(orders) -> None:
    """Every order through STATUSES, paced over PRODUCE_SECONDS (a shop's steady trickle, not one burst)."""
    pause = PRODUCE_SECONDS / (len(STATUSES) * len(orders))
    for status in STATUSES:
        for order in orders:
            order_transition(order_id=order.pk, to_status=status)
            time.sleep(pause)


def exit_time(process, deadline: float) -> float:
    """When `process` exited (time.monotonic()), waiting up to `deadline` seconds."""
    process.wait(deadline)
    return time.monotonic()


def start_request_in_flight(port: int) -> socket.socket:
    """A GET whose headers are still arriving: it is in flight when the SIGTERM comes."""
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
    return client


def finish_request(client: socket.socket) -> bytes:
    """Send the blank line that ends the headers, then read the response to the end (the server closes)."""
    client.sendall(b"\r\n")
    response = b""
    while chunk := client.recv(65536):
        response += chunk
    client.close()
    return response


async def test_sigterm_drains_every_socket_with_1012_spread_out_and_each_resumes_on_the_next_process_once(cluster):
    drain_env = {"WEB_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    old = cluster.web("daphne-old", extra_env=drain_env)
    orders, sessions = await in_thread(customers_with_sessions, CUSTOMERS)
    clients = {pk: ResilientClient([old], sessions[pk], last_seq=1).start() for pk in sessions}
    await wait_until(lambda: all(c.connects == 1 for c in clients.values()), deadline=30)

    # Changes under way, a request in flight, then the deploy: SIGTERM, and the new process on the same port.
    producing = asyncio.create_task(in_thread(produce, list(orders.values())))
    await wait_until(lambda: sum(len(c.delivered) for c in clients.values()) >= CUSTOMERS // 2, deadline=30)
    in_flight = await asyncio.to_thread(start_request_in_flight, old.port)
    stopped_at = time.monotonic()
    old.process.process.send_signal(signal.SIGTERM)
    exited = asyncio.create_task(asyncio.to_thread(exit_time, old.process.process, DRAIN_SECONDS + CANCEL_WAIT + 10))
    await asyncio.to_thread(old.process.wait_for_log, r"Draining: stopped listening", 10)
    response = await asyncio.to_thread(finish_request, in_flight)
    new = await asyncio.to_thread(cluster.web, "daphne-new", extra_env=drain_env, port=old.port)
    exited_after = await exited - stopped_at
    await producing

    everyone_back = await wait_until(
        lambda: all(c.delivered == [2, 3, 4] for c in clients.values()),
        deadline=30,
        describe=lambda: f"{sum(c.delivered != [2, 3, 4] for c in clients.values())} clients behind",
    )
    figures = delivery_figures(clients.values(), committed=len(STATUSES) * CUSTOMERS)
    for client in clients.values():
        await client.stop()
    close_times = sorted(t for c in clients.values() for t in c.close_times)
    spread = DRAIN_SECONDS * CLOSES_SHARE
    busiest_tenth = max(sum(1 for u in close_times if t <= u < t + spread / 10) for t in close_times)
    old_log = old.process.log_text()
    record(
        "web_process_drain",
        clients=CUSTOMERS,
        drain_seconds=DRAIN_SECONDS,
        **figures,
        close_codes_per_client=sorted({tuple(c.close_codes) for c in clients.values()}),
        seconds_from_first_to_last_close=round(close_times[-1] - close_times[0], 2),
        most_closes_in_a_tenth_of_the_spread=busiest_tenth,
        seconds_from_sigterm_to_exit=round(exited_after, 2),
        exit_code=old.process.process.returncode,
        request_in_flight_status=response.split(b"\r\n", 1)[0].decode(),
        seconds_until_every_client_caught_up=round(everyone_back, 2),
        new_process_on_the_same_port=new.port == old.port,
    )
    assert all(c.close_codes == [CLOSE_SERVICE_RESTART] for c in clients.values())  # none 1006, each closed once
    assert all(c.connects == 2 for c in clients.values())  # and came back once, to the new process
    assert all(c.delivered == [2, 3, 4] for c in clients.values())  # nothing lost
    assert figures["duplicate_frames_dropped_by_seq"] == 0  # nothing twice
    assert close_times[-1] - close_times[0] >= spread / 2  # spread out, not all at one instant
    assert busiest_tenth <= CUSTOMERS / 4
    assert response.startswith(b"HTTP/1.1 200 ") and response.rstrip().endswith(b"</html>")
    assert old.process.process.returncode == 0 and exited_after <= DRAIN_SECONDS + CANCEL_WAIT + 2
    assert "Traceback" not in old_log and "Unexpected" not in old_log
