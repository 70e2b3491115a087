"""`manage.py notifications_deliver [--loop]`: the offline fallback without Celery (embedded mode, `make run`)."""

import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError

from notifications.offline import offline_deliveries_run

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Send the offline deliveries that are due (emails, pushes): once, or with --loop every "
        "NOTIFICATION_DELIVERY_INTERVAL seconds, as beat runs the deliver_notifications task with Redis."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running, one run every interval")

    def handle(self, *args, loop: bool, **options):
        if not loop:
            self._report(offline_deliveries_run())
            return
        interval = settings.NOTIFICATION_DELIVERY_INTERVAL
        self.stdout.write(f"Delivering offline notifications every {interval:g}s (Ctrl-C stops)")
        try:
            while True:
                try:
                    run = offline_deliveries_run()
                except DatabaseError:
                    logger.exception("A delivery run failed; the next one retries")
                else:
                    if run.sent or run.skipped or run.failed:
                        self._report(run)
                time.sleep(interval)  # the schedule itself, as beat's
        except KeyboardInterrupt:
            return

    def _report(self, run) -> None:
        self.stdout.write(f"Deliveries: {run.sent} sent, {run.skipped} skipped, {run.failed} failed")
