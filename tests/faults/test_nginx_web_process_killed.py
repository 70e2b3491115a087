"""Issue 19, point 5: nginx in front of two web processes, one SIGKILLed while notifications are committed.

The real nginx runs the shipped deploy/nginx.conf, rendered for two loopback daphne processes (tests/live/nginx.py).
Every customer's socket goes through it; least_conn spreads them over both. The kill drops one process's share
at once (no close frame); each of those pages reconnects to nginx, which finds the dead process refusing and
hands the socket to the survivor, where it resumes with ?after=<last seq>. The customers' own reconnects are
all the test does; nginx alone decides where they land.
"""

import asyncio
import re
import time
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.conftest import requires_postgres, requires_redis
from tests.faults.client import ResilientClient, customers_with_sessions, delivery_figures, in_thread, wait_until
from tests.faults.conftest import record
from tests.live.servers import live_db

pytestmark = [live_db, requires_postgres(), requires_redis(), pytest.mark.timeout(240)]

CUSTOMERS = 40
STATUSES = (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED)  # seqs 2, 3 and 4 of each customer
PRODUCE_SECONDS = 6.0  # the changes are spread over this, so the kill lands in the middle of them
# A socket's line in nginx's access log (deploy/nginx.conf's log_format): its id and each upstream tried, in order.
SOCKET_OPENED = re.compile(
    # nginx logs the path without its query string (?after=…): deploy/nginx.conf, shop_logged_path.
    r'"GET /ws/notifications/ HTTP/1\.1" 101 .* request_id=(\S+) upstream=(.+?) upstream_status='
)
SOCKET_CONNECTED = re.compile(r"socket_connected .* request_id=(\S+)")


def produce(orders) -> None:
    """Every order through STATUSES, paced over PRODUCE_SECONDS (a shop's steady trickle, not one burst)."""
    pause = PRODUCE_SECONDS / (len(STATUSES) * len(orders))
    for status in STATUSES:
        for order in orders:
            order_transition(order_id=order.pk, to_status=status)
            time.sleep(pause)


def sockets_held(web) -> int:
    """The web process's own count of its open sockets, scraped from it directly (nginx refuses /metrics)."""
    response = httpx.get(f"{web.base_url}/metrics", timeout=10)
    response.raise_for_status()
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    return int(families["shop_ws_connections"].samples[0].value)


def sockets_opened_through(proxy) -> list[tuple[str, list[str]]]:
    """(request id, upstreams tried in order) of each socket nginx logged (it logs one when it closes)."""
    opened = (SOCKET_OPENED.search(line) for line in proxy.access_log_lines())
    return [(match[1], match[2].split(", ")) for match in opened if match]


def socket_request_ids(web) -> list[str]:
    return SOCKET_CONNECTED.findall(web.process.log_text())


async def test_a_web_process_killed_behind_nginx_loses_nothing_and_its_sockets_resume_on_the_other(cluster):
    trusting_nginx = {"TRUSTED_PROXIES": "127.0.0.1"}
    doomed = cluster.web("daphne-doomed", extra_env=trusting_nginx)
    survivor = cluster.web("daphne-survivor", extra_env=trusting_nginx)
    proxy = cluster.nginx([doomed, survivor])
    orders, sessions = await in_thread(customers_with_sessions, CUSTOMERS)
    clients = {pk: ResilientClient([proxy], sessions[pk], last_seq=1).start() for pk in sessions}
    await wait_until(lambda: all(c.connects == 1 for c in clients.values()), deadline=30)
    held_before = {"doomed": await asyncio.to_thread(sockets_held, doomed)}
    held_before["survivor"] = await asyncio.to_thread(sockets_held, survivor)

    # Changes under way, then the kill: every socket on `doomed` drops at once, mid-stream.
    producing = asyncio.create_task(in_thread(produce, list(orders.values())))
    await wait_until(lambda: sum(len(c.delivered) for c in clients.values()) >= CUSTOMERS // 2, deadline=30)
    doomed.process.process.kill()
    await asyncio.to_thread(doomed.process.process.wait, 10)
    dropped_back = await wait_until(
        lambda: sum(c.connects for c in clients.values()) >= CUSTOMERS + held_before["doomed"], deadline=30
    )
    await producing

    await wait_until(
        lambda: all(c.delivered == [2, 3, 4] for c in clients.values()),
        deadline=30,
        describe=lambda: f"{sum(c.delivered != [2, 3, 4] for c in clients.values())} clients behind",
    )
    held_after = await asyncio.to_thread(sockets_held, survivor)
    figures = delivery_figures(clients.values(), committed=len(STATUSES) * CUSTOMERS)
    for client in clients.values():
        await client.stop()
    connects = sum(c.connects for c in clients.values())
    await wait_until(lambda: len(sockets_opened_through(proxy)) >= connects, deadline=15)
    opened = sockets_opened_through(proxy)
    tried_the_dead_one_first = sum(len(upstreams) > 1 for _, upstreams in opened)
    error_log = proxy.process.log_text()
    record(
        "nginx_web_process_killed",
        clients=CUSTOMERS,
        sockets_per_process_before_the_kill=held_before,
        **figures,
        handshakes_refused_to_clients=sum(sum(c.handshake_failures.values()) for c in clients.values()),
        reconnects_nginx_first_tried_on_the_dead_process=tried_the_dead_one_first,
        seconds_from_kill_to_every_dropped_socket_back=round(dropped_back, 2),
    )

    # Both processes had a share, and the dead one's share came back through nginx, to the survivor, once each.
    assert held_before["doomed"] > 0 and held_before["survivor"] > 0
    assert held_before["doomed"] + held_before["survivor"] == CUSTOMERS
    assert held_after == CUSTOMERS
    assert connects == CUSTOMERS + held_before["doomed"]
    assert all(not c.handshake_failures for c in clients.values())  # nginx skipped the dead one: no 502 reached anyone
    assert 1 <= tried_the_dead_one_first < held_before["doomed"]  # refused once, then left out (max_fails=1)
    assert "no live upstreams" not in error_log and "Connection refused) while connecting to upstream" in error_log
    # Every notification committed, shown once by every client, in order; no frame twice either.
    assert all(c.delivered == [2, 3, 4] for c in clients.values())
    assert figures["lost"] == 0 and figures["duplicate_frames_dropped_by_seq"] == 0
    assert all(not c.foreign_frames for c in clients.values())
    # Each socket's request id is the one nginx logged it under and the one its web process logged it under.
    assert sorted(request_id for request_id, _ in opened) == sorted(
        socket_request_ids(doomed) + socket_request_ids(survivor)
    )
    answered_by = Counter(upstreams[-1] for _, upstreams in opened)
    assert answered_by == {f"127.0.0.1:{doomed.port}": held_before["doomed"], f"127.0.0.1:{survivor.port}": CUSTOMERS}
