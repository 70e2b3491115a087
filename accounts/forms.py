from django import forms
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm
from django.db import transaction

from accounts.login_limits import password_reset_allowed
from accounts.models import User
from accounts.tasks import password_reset_email_send


class SignUpForm(UserCreationForm):
    """Sign-up with a username, a required unique email and a password."""

    class Meta:
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean_email(self):
        """Taken whatever its case: on the field, where the constraint's own error would be the form's."""
        email = self.cleaned_data["email"]
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address already exists.", code="unique")
        return email


class PasswordResetRequestForm(PasswordResetForm):
    """Django's form, whose `save()` queues the email for each matching account (accounts/password_reset.py)."""

    def save(self, request=None, **kwargs) -> None:
        email = self.cleaned_data["email"]
        address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
        if not password_reset_allowed(email=email, address=address):
            return  # the same answer as ever: over a limit, only the email is left out
        for user in self.get_users(email):  # active, with a usable password, any case
            transaction.on_commit(lambda user_id=user.pk: password_reset_email_send.delay(user_id=user_id))
