"""A fault injected into a Celery worker: confirm_payment stops at a chosen point until the worker is killed.

Installed only through tests.faults.settings_pause_in_task, in a worker that a fault test
starts; never in the shop itself. The worker's environment says where to stop:

- `FAULT_PAUSE_AT=before_commit`: the order is paid, its OrderEvent and Notification are
  written, and the transaction is still open (the row stays locked);
- `FAULT_PAUSE_AT=before_ack`: the task has committed and published and returned; the
  late ack has not been sent.

On arrival it writes `reached` in `FAULT_PAUSE_DIR` (so the test knows, without guessing
a delay, that the worker is there), then waits for a `release` file, which the test writes
or not (then the worker leaves only by SIGKILL). It stops there once: a rerun (in the new
pool process that replaced a killed one) goes on.
"""

import os
import time
from pathlib import Path

from django.apps import AppConfig
from django.db import connection

REACHED = "reached"
RELEASE = "release"
TASK = "orders.tasks.confirm_payment"


def pause(where: str) -> None:
    folder = Path(os.environ["FAULT_PAUSE_DIR"])
    if (folder / REACHED).exists():
        return
    # Written then renamed: the test never reads half a marker.
    partial = folder / f"{REACHED}.partial"
    partial.write_text(f"{where} pid={os.getpid()} in_transaction={connection.in_atomic_block}\n")
    partial.rename(folder / REACHED)
    while not (folder / RELEASE).exists():
        time.sleep(0.05)  # the injected fault itself: a worker stuck mid-task


class PauseInTaskConfig(AppConfig):
    name = "tests.faults"
    label = "faults_pause_in_task"

    def ready(self):
        from celery.signals import task_postrun
        from django.db.models.signals import post_save

        from orders.models import Order, OrderStatus

        where = os.environ["FAULT_PAUSE_AT"]

        def before_commit(sender, instance, created, **kwargs):
            # Connected after orders' own post_save handler (this app comes later in
            # INSTALLED_APPS), so the notification row is written too, uncommitted.
            if not created and instance.status == OrderStatus.PAID:
                pause(where)

        def before_ack(sender=None, **kwargs):
            # task_postrun runs inside the trace, before the worker's late ack.
            if sender is not None and sender.name == TASK:
                pause(where)

        if where == "before_commit":
            post_save.connect(before_commit, sender=Order, weak=False, dispatch_uid="faults.pause_before_commit")
        elif where == "before_ack":
            task_postrun.connect(before_ack, weak=False, dispatch_uid="faults.pause_before_ack")
        else:
            raise ValueError(f"FAULT_PAUSE_AT must be before_commit or before_ack, not {where!r}")
