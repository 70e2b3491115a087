"""Resetting a forgotten password with Django's own views, tokens and forms, the email sent by a task after commit.

The request only queues the user's id: the worker mints the token and builds the link on SITE_URL (never the
request's Host header, which a client chooses), so the answer takes as long for an unknown address as for a
known one, no reset link ever passes through the broker, and a slow mail server never holds a request.
"""

from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from notifications.email import absolute_url

SUBJECT_TEMPLATE = "accounts/email/password_reset_subject.txt"
BODY_TEMPLATE = "accounts/email/password_reset.txt"
HTML_TEMPLATE = "accounts/email/password_reset.html"


def password_reset_email(*, user_id: int) -> None:
    """Send the account's reset link, if it can still be reset (active, with a usable password)."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    context = {
        "user": user,
        "reset_url": absolute_url(reverse("accounts:password_reset_confirm", args=[uid, token])),
        "login_url": absolute_url(reverse("accounts:login")),
    }
    PasswordResetForm().send_mail(
        SUBJECT_TEMPLATE, BODY_TEMPLATE, context, None, user.email, html_email_template_name=HTML_TEMPLATE
    )
