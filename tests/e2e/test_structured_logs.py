"""JSON logs from real processes (LOG_FORMAT=json): every line one JSON object, no secret in any, quiet when idle.

The web server runs at LOG_LEVEL=DEBUG, so whatever any library logs at any level is searched for the secrets a
real login, a socket and failing requests hand it; the worker and beat run with the sweeps every half second.
"""

import json
import re
import sys
import time
import uuid

import pytest
import websockets
from django.conf import settings

from celery_app import app as celery
from tests.conftest import requires_postgres, requires_redis
from tests.factories import DEFAULT_PASSWORD
from tests.live.clients import CSRF_INPUT, Browser, receive_hello
from tests.live.servers import (
    POLL_INTERVAL,
    START_DEADLINE,
    ManagedProcess,
    delete_queue,
    live_db,
    server_env,
    start_web_server,
)

pytestmark = [pytest.mark.e2e, live_db, requires_postgres()]


def json_lines(process: ManagedProcess, since: int = 0) -> list[dict]:
    """Every line the process wrote since `since`, each parsed: fails on one that is not a JSON object."""
    lines = []
    for line in process.log_text(since).splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            pytest.fail(f"{process.name} wrote a line that is not JSON: {line!r}", pytrace=False)
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


def wait_for_lines(process: ManagedProcess, done, what: str) -> list[dict]:
    """Poll the process's JSON lines until `done(lines)`; the lines."""
    end = time.monotonic() + START_DEADLINE
    while True:
        lines = json_lines(process)
        if done(lines):
            return lines
        process.check_running()
        if time.monotonic() > end:
            pytest.fail(f"{process.name} logged no {what}; its log:\n{process.log_tail()}", pytrace=False)
        time.sleep(POLL_INTERVAL)


@pytest.fixture(scope="module")
def json_web(django_db_setup, e2e_workdir, e2e_static_root):
    """daphne in embedded mode, logging JSON at DEBUG."""
    env = server_env(REDIS_URL="", LOG_FORMAT="json", LOG_LEVEL="DEBUG")
    server = start_web_server("daphne-json", env, e2e_workdir, e2e_static_root)
    try:
        yield server
    finally:
        server.process.stop()


async def test_no_password_session_cookie_csrf_token_or_authorization_reaches_any_log_line(json_web, customer):
    since = json_web.process.log_size()
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    authorization = f"Bearer {uuid.uuid4().hex}"
    unsubscribe_token = f"token-{uuid.uuid4().hex}"
    browser = Browser(json_web.base_url)
    try:
        page = await browser.client.get("/accounts/login/")
        form_token = CSRF_INPUT.search(page.text).group(1)
        referer = {"Referer": f"{json_web.base_url}/accounts/login/"}
        refused = await browser.client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": form_token, "username": customer.username, "password": wrong_password},
            headers=referer,
        )
        assert refused.status_code == 200  # the form again, with its error
        await browser.login(customer.username)
        # Failing requests, with the session, the CSRF cookie and an Authorization header: no token (403),
        # a page that is not there (404), an unsubscribe link that is not valid.
        headers = {"Authorization": authorization, **referer}
        assert (await browser.client.post("/notifications/read/", headers=headers)).status_code == 403
        assert (await browser.client.get("/no/such/page/", headers=headers)).status_code == 404
        await browser.client.get(f"/notifications/unsubscribe/{unsubscribe_token}/", headers=headers)
        socket = await websockets.connect(
            json_web.ws_url, origin=json_web.origin, additional_headers={"Cookie": f"sessionid={browser.session_id}"}
        )
        await receive_hello(socket)
        await socket.close()
        secrets = {
            "session key": browser.session_id,
            "CSRF cookie": browser.csrf_token,
            "CSRF form token": form_token,
            "password": DEFAULT_PASSWORD,
            "wrong password": wrong_password,
            "authorization": authorization.split()[1],
            "unsubscribe token": unsubscribe_token,
        }
    finally:
        await browser.aclose()
    wait_for_lines(
        json_web.process, lambda lines: any(line["event"] == "socket_closed" for line in lines), "socket_closed"
    )

    text = json_web.process.log_text(since)
    lines = json_lines(json_web.process, since)
    assert {line.get("logger") for line in lines} >= {"django_structlog.middlewares.request", "django.security.csrf"}
    assert [name for name, secret in secrets.items() if secret in text] == []


async def test_a_request_logs_its_id_and_user_and_answers_with_the_id(json_web, customer):
    browser = Browser(json_web.base_url)
    try:
        await browser.login(customer.username)
        since = json_web.process.log_size()
        response = await browser.client.get("/orders/", headers={"X-Request-ID": "lb-7f3a9c"})
    finally:
        await browser.aclose()
    assert response.headers["X-Request-ID"] == "lb-7f3a9c"
    lines = wait_for_lines(
        json_web.process, lambda lines: any(line.get("request_id") == "lb-7f3a9c" for line in lines), "request line"
    )
    [finished] = [
        line for line in lines if line.get("request_id") == "lb-7f3a9c" and line["event"] == "request_finished"
    ]
    assert (finished["user_id"], finished["code"], finished["request"]) == (customer.pk, 200, "GET /orders/")
    assert json_lines(json_web.process, since)  # nothing but JSON since


# --- Worker and beat ---------------------------------------------------------------------------------------

SWEEP_TASKS = {"notifications.tasks.republish_notifications", "notifications.tasks.deliver_notifications"}


def _is_ready(line: dict) -> bool:
    return re.search(r"@\S+ ready\.", line["event"]) is not None


def celery_process(name: str, role: list[str], env: dict, workdir) -> ManagedProcess:
    # -q: no start-up banner, which celery prints as plain text rather than logs.
    argv = [sys.executable, "-m", "celery", "-A", "celery_app", "-q", *role]
    return ManagedProcess(name, argv, env, workdir / f"{name}.log").start()


def tasks_run(worker_name: str) -> dict[str, int]:
    """How many of each task the worker has run, by its own count (celery's remote control, over the broker)."""
    with celery.connection_for_write() as connection:
        stats = celery.control.inspect(destination=[worker_name], timeout=1, connection=connection).stats() or {}
    return stats.get(worker_name, {}).get("total", {})


@requires_redis()
def test_idle_sweeps_log_nothing_and_a_tasks_lines_carry_its_id_and_name(e2e_workdir):
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    env = server_env(
        REDIS_URL=settings.REDIS_URL,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CELERY_QUEUE=queue,
        LOG_FORMAT="json",
        NOTIFICATION_REPUBLISH_AFTER="1",
        NOTIFICATION_DELIVERY_INTERVAL="0.5",
    )
    worker = celery_process(
        "celery-worker-json",
        ["worker", "--pool=solo", "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        env, e2e_workdir,
    )  # fmt: skip
    beat = None
    try:
        lines = wait_for_lines(worker, lambda lines: any(_is_ready(line) for line in lines), "ready line")
        worker_name = next(line for line in lines if _is_ready(line))["event"].removesuffix(" ready.")
        beat = celery_process("celery-beat-json", ["beat", f"--schedule={e2e_workdir / queue}"], env, e2e_workdir)
        # Each sweep a few times, so the worker was idle between runs too.
        end = time.monotonic() + START_DEADLINE
        while not all(tasks_run(worker_name).get(name, 0) >= 3 for name in SWEEP_TASKS):
            worker.check_running()
            assert time.monotonic() < end, f"the sweeps did not run: {tasks_run(worker_name)}"
            time.sleep(POLL_INTERVAL)
        idle_lines = json_lines(worker)[len(lines) :]
        beat_lines = json_lines(beat)
        # A task with something to say: an order that is not there (a WARNING).
        with celery.connection_for_write() as connection:
            celery.send_task("orders.tasks.confirm_payment", args=(987654321,), queue=queue, connection=connection)
        task_lines = wait_for_lines(
            worker, lambda lines: any("no longer exists" in line["event"] for line in lines), "the task's warning"
        )
    finally:
        for process in (beat, worker):
            if process is not None:
                process.stop()
        delete_queue(queue)

    assert idle_lines == []
    # Beat says nothing per tick ("Scheduler: Sending due task" is INFO, from WARNING only), nor anything of its own.
    assert [line for line in beat_lines if line["logger"].startswith("celery")] == []
    [warning] = [line for line in task_lines if "no longer exists" in line["event"]]
    assert warning["task"] == "orders.tasks.confirm_payment" and re.fullmatch(r"[0-9a-f-]{36}", warning["task_id"])
