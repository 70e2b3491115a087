from django import forms
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm

from accounts.countries import shipping_country_choices
from accounts.login_limits import password_reset_allowed
from accounts.models import ADDRESS_FIELDS, CustomerAddress, User
from accounts.selectors import email_taken
from accounts.tasks import password_reset_email_send
from shop.task_sends import task_send_on_commit


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
        return email_unique_clean(self.cleaned_data["email"])


def email_unique_clean(email: str, *, user: User | None = None) -> str:
    """The email, unless another account has it whatever its case (a form's field error, not the constraint's)."""
    if email_taken(email=email, except_user_id=user.pk if user else None):
        raise forms.ValidationError("An account with this email address already exists.", code="unique")
    return email


class ProfileForm(forms.ModelForm):
    """The account page's email and name."""

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean_email(self):
        return email_unique_clean(self.cleaned_data["email"], user=self.instance)


class PasswordResetRequestForm(PasswordResetForm):
    """Django's form, whose `save()` queues the email for each matching account (accounts/password_reset.py)."""

    def save(self, request=None, **kwargs) -> None:
        email = self.cleaned_data["email"]
        address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
        if not password_reset_allowed(email=email, address=address):
            return  # the same answer as ever: over a limit, only the email is left out
        for user in self.get_users(email):  # active, with a usable password, any case
            task_send_on_commit(password_reset_email_send, kwargs={"user_id": user.pk})


class AddressForm(forms.ModelForm):
    """A name and shipping address: checkout's, and the address book's. Only countries the shop ships to."""

    country = forms.ChoiceField(choices=shipping_country_choices)  # a callable: names in the request's language

    class Meta:
        model = CustomerAddress
        fields = ADDRESS_FIELDS
        widgets = {
            "full_name": forms.TextInput(attrs={"autocomplete": "name"}),
            "line1": forms.TextInput(attrs={"autocomplete": "address-line1"}),
            "line2": forms.TextInput(attrs={"autocomplete": "address-line2"}),
            "postcode": forms.TextInput(attrs={"autocomplete": "postal-code"}),
            "city": forms.TextInput(attrs={"autocomplete": "address-level2"}),
            "phone": forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
        }
        labels = {"line2": "Address line 2 (optional)", "phone": "Phone (optional)"}
        help_texts = {"phone": "For the carrier, if they need to reach you."}
