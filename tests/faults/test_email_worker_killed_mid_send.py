"""Fault: a Celery worker is SIGKILLed mid-send, while the SMTP server holds its reply to the message's DATA.

The test's SMTP server (aiosmtpd, tests/smtp_server.py) has the whole message and keeps its reply: the server has
not said 250, the moment a send is most exposed. The worker is killed there. Its claim on the delivery runs out
(NOTIFICATION_DELIVERY_LEASE); the beat's next run, on a worker started after the kill, claims the row again and
sends it under the same Message-ID. The killed send was never accepted, so the customer gets exactly one email.
"""

import re
import time

import pytest

from notifications.kinds import Channel
from notifications.models import DeliveryState, NotificationDelivery
from orders.models import OrderStatus
from orders.transitions import order_transition
from tests.conftest import requires_postgres, requires_redis
from tests.factories import UserFactory, place_order
from tests.faults.client import wait_until_sync
from tests.faults.conftest import record
from tests.live.servers import live_db
from tests.smtp_server import SMTPServer

pytestmark = [live_db, requires_postgres(), requires_redis()]

LEASE_SECONDS = 3
# A worker's start, the lease and a beat interval take seconds; generous for a loaded CI machine.
DEADLINE = 60.0
TASK = "notifications.tasks.deliver_notifications"


def deliver_runs(log: str) -> int:
    return len(re.findall(rf"Task {re.escape(TASK)}\[[^\]]+\] succeeded", log))


@pytest.fixture
def smtp_server():
    server = SMTPServer().start()
    yield server
    server.stop()


def test_a_worker_killed_while_the_smtp_server_holds_the_reply_still_yields_exactly_one_email(
    cluster, smtp_server, settings
):
    settings.NOTIFICATION_EMAIL_DELAY = 1  # this process records the notification, so it plans the delivery
    cluster.env.update(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
        NOTIFICATION_EMAIL_DELAY="1",
        NOTIFICATION_DELIVERY_INTERVAL="1",
        NOTIFICATION_DELIVERY_LEASE=str(LEASE_SECONDS),
        EMAIL_TIMEOUT="120",  # the held reply outlasts the test: only the kill ends that send
    )
    smtp_server.hold_next = True
    doomed = cluster.worker()
    cluster.beat()
    customer = UserFactory()
    order = place_order(customer=customer, status=OrderStatus.PROCESSING)
    order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED)
    delivery = NotificationDelivery.objects.get(notification__recipient=customer, channel=Channel.EMAIL)

    wait_until_sync(smtp_server.holding.is_set, deadline=DEADLINE, describe=lambda: doomed.log_tail(lines=30))
    delivery.refresh_from_db()
    held = (delivery.state, delivery.attempts, delivery.message_id, delivery.claimed_until is not None)
    doomed.process.kill()
    exit_code = doomed.process.wait(10)
    killed_at = time.monotonic()

    rescuer = cluster.worker()
    wait_until_sync(lambda: smtp_server.received, deadline=DEADLINE, describe=lambda: rescuer.log_tail(lines=30))
    sent_after = time.monotonic() - killed_at
    # Exactly one: the beat's runs go on after the send, and nothing more arrives.
    runs_at_send = deliver_runs(rescuer.log_text())
    wait_until_sync(lambda: deliver_runs(rescuer.log_text()) >= runs_at_send + 3, deadline=DEADLINE,
                    describe=lambda: rescuer.log_tail(lines=30))  # fmt: skip
    delivery.refresh_from_db()
    order.refresh_from_db()

    [email] = smtp_server.received
    record(
        "email_worker_killed_mid_send",
        killed_worker_exit_code=exit_code,
        lease_seconds=LEASE_SECONDS,
        seconds_from_kill_to_email_accepted=round(sent_after, 2),
        messages_offered=smtp_server.data_commands,
        messages_accepted=len(smtp_server.received),
        delivery_attempts=delivery.attempts,
        same_message_id=email.message["Message-ID"] == held[2],
    )
    assert exit_code == -9
    assert held == (DeliveryState.PENDING, 1, email.message["Message-ID"], True)
    assert smtp_server.data_commands == 2  # the held one, never accepted, and the one that was
    assert email.rcpt_tos == [customer.email] and order.number in email.message["Subject"]
    assert (delivery.state, delivery.attempts, delivery.message_id) == (DeliveryState.SENT, 2, held[2])
    assert order.status == OrderStatus.SHIPPED
