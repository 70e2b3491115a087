"""Celery's throughput on each broker: a batch of tasks published at once, then run by a worker as the Procfile runs it.

One worker on Redis and one on RabbitMQ, each on a queue of this run's own, stay up for the whole run; the batches
alternate between them (Redis, RabbitMQ, Redis, ...) so both see the same machine. The task is beat's
`republish_notifications` with nothing to publish: a task's whole path (publish, deliver, one UPDATE, ack) and no more.
A batch is done when its queue is empty (at most the two pool processes' tasks are still running then).

    python -m bench.broker --redis redis://127.0.0.1:6379/1 --rabbitmq amqp://guest:guest@127.0.0.1:5672/shop_a \
        --database postgres://postgres@127.0.0.1:5432/shop_a --tasks 2000 --rounds 3

Results: docs/performance.md, "Celery broker".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.stack import ROOT, stop_process

LOGS = Path(tempfile.gettempdir())
TASK = "notifications.tasks.republish_notifications"
DEADLINE = 300.0


def worker_env(*, database: str, redis: str, rabbitmq: str, queue: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DEBUG": "true",
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "CELERY_BROKER_URL": rabbitmq,
        "CELERY_QUEUE": queue,
        "SIMULATE_ORDER_PROGRESS": "false",
        "LOG_LEVEL": "INFO",  # its "ready." line; the task logs nothing when there is nothing to publish
    }


def start_worker(env: dict[str, str], log_path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--concurrency=2", "-Q", env["CELERY_QUEUE"],
            "-n", f"{env['CELERY_QUEUE']}@%h", "--without-gossip", "--without-mingle"]  # fmt: skip
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=log)


def configured_app(env: dict[str, str]):
    """This process's Celery app, configured as the worker is (one broker per run of this function's caller)."""
    os.environ.update({name: value for name, value in env.items() if value})
    import django

    django.setup()
    from celery_app import app

    return app


def waiting(url: str, queue: str) -> int:
    """Tasks still in the queue (Redis: the list's length; RabbitMQ: the queue's ready messages)."""
    if url.startswith("redis"):
        import redis

        with redis.Redis.from_url(url) as client:
            return client.llen(queue)
    from tests.rabbitmq_server import amqp_queue_depth

    return amqp_queue_depth(url, queue)[0]


def batch(app, url: str, options: dict, queue: str, tasks: int) -> dict:
    """Publish `tasks` over one connection, then wait until the worker has taken them all."""
    started = time.monotonic()
    with app.connection_for_write(url, transport_options=options) as connection:
        for _ in range(tasks):
            app.send_task(TASK, queue=queue, connection=connection)
    published = time.monotonic() - started
    while waiting(url, queue):
        if time.monotonic() - started > DEADLINE:
            raise SystemExit(f"{queue}: not done within {DEADLINE}s")
        time.sleep(0.05)
    drained = time.monotonic() - started
    return {"published_per_second": round(tasks / published), "run_per_second": round(tasks / drained)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--rabbitmq", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from shop.celery_broker import celery_broker_settings

    run = uuid.uuid4().hex[:8]
    brokers = {
        "redis": (args.redis, "", f"bench-broker-redis-{run}"),
        "rabbitmq": (args.rabbitmq, args.rabbitmq, f"bench-broker-rabbitmq-{run}"),
    }
    workers = {}
    try:
        for name, (_, rabbitmq, queue) in brokers.items():
            env = worker_env(database=args.database, redis=args.redis, rabbitmq=rabbitmq, queue=queue)
            workers[name] = start_worker(env, LOGS / f"bench-broker-{run}-{name}.log")
        # No CELERY_BROKER_URL in this process (Celery would read it ahead of any URL given), but RabbitMQ's queue
        # settings, so it declares queues as the workers do (Redis ignores a queue's arguments); each batch publishes
        # over its broker's URL with that broker's transport options (publisher confirms on RabbitMQ).
        app = configured_app(worker_env(database=args.database, redis=args.redis, rabbitmq="", queue="unused"))
        rabbitmq_settings = celery_broker_settings(url=args.rabbitmq, redis=args.redis, visibility_timeout=300)
        app.conf.update(
            {name.removeprefix("CELERY_").lower(): value for name, value in rabbitmq_settings.items()
             if name.startswith("CELERY_TASK_")}
        )  # fmt: skip
        results = {name: [] for name in brokers}
        for name, (_, _, queue) in brokers.items():
            end = time.monotonic() + DEADLINE
            log = LOGS / f"bench-broker-{run}-{name}.log"
            while f"{queue}@" not in log.read_text() or " ready." not in log.read_text():
                if time.monotonic() > end or workers[name].poll() is not None:
                    raise SystemExit(f"{queue}: the worker did not start")
                time.sleep(0.2)
        for _ in range(args.rounds):
            for name, (url, rabbitmq, queue) in brokers.items():
                options = celery_broker_settings(url=rabbitmq, redis=args.redis, visibility_timeout=300)[
                    "CELERY_BROKER_TRANSPORT_OPTIONS"
                ]
                figures = batch(app, url, options, queue, args.tasks)
                results[name].append(figures)
                print(name, figures, flush=True)
        print(json.dumps({"tasks_per_batch": args.tasks, **results}, indent=2))
    finally:
        for process in workers.values():
            stop_process(process, 15.0)
        from tests.live.servers import delete_queue_keys
        from tests.rabbitmq_server import amqp_queue_delete

        delete_queue_keys(args.redis, brokers["redis"][2])
        amqp_queue_delete(args.rabbitmq, brokers["rabbitmq"][2])


if __name__ == "__main__":
    main()
