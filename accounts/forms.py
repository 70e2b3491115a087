from django import forms
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm
from django.db import transaction

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

    def save(self, **kwargs) -> None:
        for user in self.get_users(self.cleaned_data["email"]):  # active, with a usable password, any case
            transaction.on_commit(lambda user_id=user.pk: password_reset_email_send.delay(user_id=user_id))
