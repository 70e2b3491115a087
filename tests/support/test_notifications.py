"""A staff reply the customer left unread becomes one `chat.message` notification: when, how many, exactly once,
and never an internal note's text on any channel (the socket, the notification centre, the email)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.email import absolute_url
from notifications.groups import user_group
from notifications.kinds import Channel, notification_kind
from notifications.models import Notification, NotificationDelivery
from notifications.offline import offline_deliveries_run
from notifications.preferences import notification_preferences_save
from notifications.push_subscriptions import push_subscription_parse, push_subscription_save
from shop.embedded_schedule import embedded_schedule
from support import notifications as support_notifications
from support.models import Conversation
from support.notifications import CHAT_MESSAGE, CHAT_MESSAGE_TOPIC, EXCERPT_LENGTH, reply_notifications_run
from support.services import conversation_read
from support.tasks import notify_support_replies
from tests.concurrency import run_concurrently
from tests.conftest import requires_postgres
from tests.factories import StaffFactory, UserFactory, place_order
from tests.notifications.conftest import push_keys  # noqa: F401 (the fixture: browser push on)
from tests.notifications.push_service import BrowserKeys
from tests.support.conftest import post

pytestmark = [requires_postgres(), pytest.mark.django_db]

DELAY = 30.0
NOTE = "Internal: customer is a known fraudster, refund nothing"
MARKUP = '<img src=x onerror="alert(1)">&amp;'


@pytest.fixture(autouse=True)
def _delay(settings):
    settings.CHAT_NOTIFY_DELAY = DELAY


@pytest.fixture
def customer():
    return UserFactory(first_name="Ada")


@pytest.fixture
def staff():
    return StaffFactory(first_name="Anna", last_name="Secret-Surname")


@pytest.fixture
def order(customer):
    return place_order(customer=customer)


def later(seconds: float = DELAY + 1):
    return timezone.now() + timedelta(seconds=seconds)


def reply_notifications(customer) -> list[Notification]:
    return list(Notification.objects.filter(recipient=customer, kind=CHAT_MESSAGE.name).order_by("seq"))


# --- The rule --------------------------------------------------------------------------------


def test_a_reply_left_unread_past_the_delay_becomes_one_notification_for_the_customer(customer, staff, order):
    reply = post(staff, order, "Your parcel is at the depot.")

    assert reply_notifications_run(now=later()) == 1

    [notification] = reply_notifications(customer)
    assert notification.actor == staff
    assert notification.payload == {
        "order": {"id": order.pk, "number": order.number},
        "title": f"Anna replied about order {order.number}",
        "body": "Your parcel is at the depot.",
        "author": {"name": "Anna"},
        "count": 1,
        "message_seq": reply.seq,
        "url": order.get_absolute_url(),
    }
    assert Conversation.objects.get(order=order).reply_unnotified_seq is None


def test_a_reply_waits_for_the_delay_before_it_notifies(customer, staff, order):
    post(staff, order, "On its way.")

    assert reply_notifications_run(now=later(DELAY - 5)) == 0
    assert reply_notifications(customer) == []
    assert reply_notifications_run(now=later()) == 1


def test_a_reply_the_customer_read_never_notifies(customer, staff, order):
    reply = post(staff, order, "On its way.")
    conversation_read(reader=customer, order_id=order.pk, seq=reply.seq)

    assert reply_notifications_run(now=later()) == 0
    assert reply_notifications(customer) == []
    assert Conversation.objects.get(order=order).reply_unnotified_seq is None  # nothing left to look at


def test_an_internal_note_never_notifies(customer, staff, order):
    post(staff, order, NOTE, internal=True)

    assert reply_notifications_run(now=later()) == 0
    assert reply_notifications(customer) == []


def test_the_customer_s_own_message_never_notifies_them(customer, order):
    post(customer, order, "Where is my parcel?")

    assert reply_notifications_run(now=later()) == 0
    assert reply_notifications(customer) == []


def test_several_unread_replies_become_one_notification_from_the_newest_saying_how_many(customer, staff, order):
    post(staff, order, "First: we are looking into it.")
    post(StaffFactory(first_name="Ben"), order, "Second: found it, it ships today.")
    post(staff, order, NOTE, internal=True)

    assert reply_notifications_run(now=later()) == 1

    [notification] = reply_notifications(customer)
    assert notification.payload["title"] == f"2 new replies about order {order.number}"
    assert notification.payload["body"] == "Second: found it, it ships today."
    assert notification.payload["author"] == {"name": "Ben"} and notification.payload["count"] == 2
    assert NOTE not in str(notification.payload)


def test_a_read_reply_is_not_counted_and_a_later_one_is_timed_from_its_own_post(customer, staff, order):
    first = post(staff, order, "First.")
    conversation_read(reader=customer, order_id=order.pk, seq=first.seq)
    second = post(staff, order, "Second.")
    # Back-date the first, as if the customer read it long ago: the second has not waited yet.
    first.__class__.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(seconds=DELAY * 2))

    assert reply_notifications_run(now=later(DELAY - 5)) == 0
    assert Conversation.objects.get(order=order).reply_unnotified_seq == second.seq

    assert reply_notifications_run(now=later()) == 1
    [notification] = reply_notifications(customer)
    assert (notification.payload["count"], notification.payload["body"]) == (1, "Second.")


def test_a_reply_after_a_notification_makes_a_new_one_once_it_is_due(customer, staff, order):
    post(staff, order, "First.")
    reply_notifications_run(now=later())
    post(staff, order, "Second.")

    assert reply_notifications_run(now=later(DELAY - 5)) == 0  # the first's notification does not make it due
    assert reply_notifications_run(now=later()) == 1
    assert [n.payload["body"] for n in reply_notifications(customer)] == ["First.", "Second."]


def test_the_excerpt_is_the_start_of_a_long_reply(customer, staff, order):
    post(staff, order, "x" * 2000)

    reply_notifications_run(now=later())

    [notification] = reply_notifications(customer)
    assert len(notification.payload["body"]) == EXCERPT_LENGTH and notification.payload["body"].endswith("…")


# --- Exactly once ----------------------------------------------------------------------------


def test_the_run_twice_makes_one_notification(customer, staff, order):
    post(staff, order, "On its way.")

    assert reply_notifications_run(now=later()) == 1
    assert reply_notifications_run(now=later()) == 0
    assert notify_support_replies.apply().get() == 0  # the task, as beat (or a redelivery) runs it

    assert len(reply_notifications(customer)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_make_one_notification_per_conversation(staff):
    customers = [UserFactory() for _ in range(5)]
    for customer in customers:
        order = place_order(customer=customer)
        post(staff, order, "First.")
        post(staff, order, "Second.")

    outcomes = run_concurrently(lambda: reply_notifications_run(now=later()), [()] * 4)

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert sum(outcomes) == 5
    for customer in customers:
        [notification] = reply_notifications(customer)
        assert notification.payload["count"] == 2


def test_the_task_is_on_beat_s_schedule_and_on_the_embedded_one(settings):
    assert settings.CELERY_BEAT_SCHEDULE["notify-support-replies"]["task"] == notify_support_replies.name
    assert embedded_schedule()["notify-support-replies"] == (notify_support_replies.name, settings.CHAT_NOTIFY_INTERVAL)


# --- What the customer is shown, on every channel --------------------------------------------


def test_the_notification_reaches_the_customer_s_socket_after_commit_without_the_note(
    listen, customer, staff, order, django_capture_on_commit_callbacks
):
    post(staff, order, MARKUP)
    post(staff, order, NOTE, internal=True)
    listener = listen(user_group(customer.pk))

    with django_capture_on_commit_callbacks(execute=True):
        reply_notifications_run(now=later())
        assert listener.receive_nothing()  # not before commit

    frame = listener.receive()["frame"]
    assert (frame["type"], frame["kind"], frame["body"]) == ("notification", "chat.message", MARKUP)
    assert frame["url"] == order.get_absolute_url()
    assert NOTE not in str(frame) and "Secret-Surname" not in str(frame)


def test_the_notification_centre_shows_the_reply_as_text_and_never_the_note(client, customer, staff, order):
    post(staff, order, MARKUP)
    post(staff, order, NOTE, internal=True)
    reply_notifications_run(now=later())
    client.force_login(customer)

    content = client.get(reverse("notifications:list")).content.decode()

    assert f"Anna replied about order {order.number}" in content
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;" in content and MARKUP not in content
    assert f'href="{order.get_absolute_url()}"' in content
    assert NOTE not in content and "Secret-Surname" not in content


def test_the_preferences_page_lists_support_replies_with_email_on_by_default(client, customer):
    client.force_login(customer)

    content = client.get(reverse("notifications:preferences")).content.decode()

    assert 'data-topic="chat.message"' in content and CHAT_MESSAGE_TOPIC.label in content
    assert CHAT_MESSAGE_TOPIC.offline_defaults == {Channel.EMAIL, Channel.PUSH}  # push once a browser subscribed
    assert notification_kind("chat.message") is CHAT_MESSAGE


class TestEmail:
    @pytest.fixture(autouse=True)
    def _emailed_at_once(self, settings):
        settings.NOTIFICATION_EMAIL_DELAY = 0

    def test_an_unread_reply_is_emailed_with_its_excerpt_and_the_order_link_never_the_note(
        self, smtp, customer, staff, order
    ):
        post(staff, order, "It ships today.\n" + MARKUP)
        post(staff, order, NOTE, internal=True)
        reply_notifications_run(now=later())

        offline_deliveries_run()

        [email] = [received for received in smtp.received if "replied about" in received.message["Subject"]]
        assert email.rcpt_tos == [customer.email]
        assert email.message["Subject"] == f"Anna replied about order {order.number}"
        link = absolute_url(order.get_absolute_url())
        text = email.text().replace("\r\n", "\n")
        assert "Anna wrote:\nIt ships today.\n" + MARKUP in text and link in text
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;" in email.html() and MARKUP not in email.html()
        assert f'href="{link}"' in email.html()
        for part in (email.text(), email.html(), str(email.message)):
            assert NOTE not in part and "Secret-Surname" not in part

    def test_no_email_when_the_customer_turned_support_reply_emails_off(self, smtp, customer, staff, order):
        notification_preferences_save(user_id=customer.pk, chosen={CHAT_MESSAGE_TOPIC.key: set()})
        post(staff, order, "It ships today.")
        reply_notifications_run(now=later())

        offline_deliveries_run()

        [notification] = reply_notifications(customer)  # still in the bell and the notification centre
        assert not NotificationDelivery.objects.filter(notification=notification).exists()
        assert not [received for received in smtp.received if "replied about" in received.message["Subject"]]


@pytest.mark.usefixtures("push_keys")
def test_an_unread_reply_is_pushed_to_a_subscribed_browser_with_its_excerpt_never_the_note(
    settings, push_service, customer, staff, order
):
    settings.NOTIFICATION_PUSH_DELAY = 0
    browser = BrowserKeys.generate()
    push_subscription_save(user_id=customer.pk, subscription=push_subscription_parse(
        data=browser.subscription_json(push_service.endpoint("laptop"))))  # fmt: skip
    post(staff, order, "It ships today.")
    post(staff, order, NOTE, internal=True)
    reply_notifications_run(now=later())

    offline_deliveries_run()

    [request] = push_service.requests_to("laptop")
    message = browser.decrypt(request.body)
    assert (message["title"], message["body"]) == (f"Anna replied about order {order.number}", "It ships today.")
    assert message["url"] == order.get_absolute_url() and NOTE not in str(message)


def test_a_conversation_that_cannot_be_notified_stays_due_and_does_not_stall_the_others(staff, monkeypatch):
    broken, fine = (place_order(customer=UserFactory()) for _ in range(2))
    post(staff, broken, "First.")
    post(staff, fine, "Second.")
    real_payload = support_notifications.chat_reply_payload

    def payload_failing_for_the_first(*, order, replies):
        if order.pk == broken.pk:
            raise ValueError("a bug in one conversation's payload")
        return real_payload(order=order, replies=replies)

    monkeypatch.setattr(support_notifications, "chat_reply_payload", payload_failing_for_the_first)

    assert reply_notifications_run(now=later()) == 1
    assert len(reply_notifications(fine.customer)) == 1 and reply_notifications(broken.customer) == []
    assert Conversation.objects.get(order=broken).reply_unnotified_seq is not None  # the next run tries again
