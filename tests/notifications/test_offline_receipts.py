"""The fallback rule end to end with real receipts: an open page that acknowledged a notification means no email.

A real socket (the consumer on the test's loop) receives the shipped notification and acks it as the shop's pages do;
then the fallback runs against a real SMTP server (aiosmtpd).
"""

import pytest
from asgiref.sync import sync_to_async

from notifications.models import DeliveryState, NotificationDelivery
from notifications.offline import offline_deliveries_run
from notifications.receipts import receipts_written
from orders.models import OrderStatus
from tests.notifications.test_consumer import make_user, open_socket, place, transition

pytestmark = [pytest.mark.django_db(transaction=True)]

run_fallback = sync_to_async(offline_deliveries_run)


@sync_to_async
def email_states(user) -> list[str]:
    return list(
        NotificationDelivery.objects.filter(notification__recipient=user, channel="email").values_list(
            "state", flat=True
        )
    )


async def test_a_shipped_order_is_emailed_only_to_the_customer_whose_page_did_not_acknowledge_it(smtp, settings):
    settings.NOTIFICATION_EMAIL_DELAY = 0
    watching, away = await make_user(), await make_user()
    watching_order = await place(customer=watching, status=OrderStatus.PROCESSING)
    away_order = await place(customer=away, status=OrderStatus.PROCESSING)
    socket, _ = await open_socket(watching)

    await transition(order_id=watching_order.pk, to_status=OrderStatus.SHIPPED)
    await transition(order_id=away_order.pk, to_status=OrderStatus.SHIPPED)
    frame = await socket.receive_json_from(timeout=10)
    assert frame["type"] == "notification" and frame["order"]["status"] == OrderStatus.SHIPPED
    await socket.send_json_to({"type": "ack", "seq": frame["seq"]})
    await socket.send_json_to({"type": "ping"})  # answered once the ack was handled
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}
    await receipts_written()
    await run_fallback()

    [email] = smtp.received
    assert email.rcpt_tos == [away.email] and away_order.number in email.message["Subject"]
    assert await email_states(watching) == [DeliveryState.SKIPPED]
    assert await email_states(away) == [DeliveryState.SENT]
    await socket.disconnect()
