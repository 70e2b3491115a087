"""The email channel: one customer's notifications as one email (a notification's own, or a digest of several), in
plain text and HTML, with a one-click unsubscribe (RFC 8058) from what it is about.

Each kind draws its own part (`NotificationKind.email_template` and `email_context`, e.g. `orders/notifications.py`);
the rest is `templates/notifications/email/`. Every value is rendered from the stored payload and what the kind's
context reads, and autoescaped in the HTML.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from notifications.frames import same_site_path
from notifications.kinds import Channel, Topic, notification_kind, notification_topic
from notifications.models import Notification
from notifications.unsubscribe import unsubscribe_token

GENERIC_ITEM_TEMPLATE = "notifications/email/item"
SUBJECT_MAX_LENGTH = 150


@dataclass(frozen=True)
class EmailItem:
    """One notification's part of an email."""

    title: str
    html: str
    text: str
    topic: Topic | None


def notification_email(*, recipient, notifications: list[Notification], message_id: str) -> EmailMultiAlternatives:
    """The email telling `recipient` of `notifications` (oldest first): one notification's, or a digest."""
    items = [_email_item(notification) for notification in notifications]
    topics = list(dict.fromkeys(item.topic for item in items if item.topic is not None))
    token = unsubscribe_token(user_id=recipient.pk, topics=[topic.key for topic in topics], channel=Channel.EMAIL)
    unsubscribe_url = absolute_url(reverse("notifications:unsubscribe", args=[token]))
    context = {
        "name": recipient.first_name or recipient.get_username(),
        "items": items,
        "topics": topics,
        "unsubscribe_url": unsubscribe_url,
        "notifications_url": absolute_url(reverse("notifications:list")),
    }
    message = EmailMultiAlternatives(
        subject=email_subject([item.title for item in items]),
        body=render_to_string("notifications/email/message.txt", context),
        to=[recipient.email],
        headers={
            "Message-ID": message_id,
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message.attach_alternative(render_to_string("notifications/email/message.html", context), "text/html")
    return message


def email_subject(titles: list[str]) -> str:
    """One line whatever the titles hold: line breaks (a header injection) and runs of blanks become one space."""
    newest = " ".join(str(titles[-1]).split()) or "News from the shop"
    more = len(titles) - 1
    subject = newest if not more else f"{newest} (and {more} more update{'s' if more > 1 else ''})"
    return subject[:SUBJECT_MAX_LENGTH]


def absolute_url(path: str) -> str:
    """`path` on the shop's address (SITE_URL); anything but a path of ours (a host, a scheme) is the home page."""
    return settings.SITE_URL + same_site_path(path, default="/")


def _email_item(notification: Notification) -> EmailItem:
    kind = notification_kind(notification.kind)
    payload = notification.payload
    context = {"notification": notification, "payload": payload, "url": absolute_url(payload.get("url", "/"))}
    if kind.email_context is not None:
        context |= kind.email_context(notification)
    template = kind.email_template or GENERIC_ITEM_TEMPLATE
    return EmailItem(
        title=str(payload.get("title", "")),
        html=render_to_string(f"{template}.html", context),
        text=render_to_string(f"{template}.txt", context),
        topic=notification_topic(notification.kind, payload),
    )
