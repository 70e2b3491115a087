from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from accounts.countries import country_name


class User(AbstractUser):
    """A shop user: a customer, or staff when `is_staff` is set.

    A custom user model from day one, as Django recommends; the email is unique, whatever its case,
    because staff search orders by it, password resets go to it, and customers sign in with a username.
    """

    email = models.EmailField("email address", unique=True)

    class Meta(AbstractUser.Meta):
        constraints = [
            # Dana@Example.com and dana@example.com are one mailbox: one account, and one owner of a reset link.
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_unique_ignoring_case",
                violation_error_message="An account with this email address already exists.",
            )
        ]

    def __str__(self):
        return self.email or self.username

    @classmethod
    def from_db(cls, db, field_names, values):
        user = super().from_db(db, field_names, values)
        # As loaded, so a save can tell that the account was just deactivated.
        user._loaded_is_active = user.is_active if "is_active" in field_names else None
        return user

    @property
    def password_changed_in_this_save(self) -> bool:
        """True between `set_password()` and the end of the save that stores it."""
        return self._password is not None

    @property
    def deactivated_in_this_save(self) -> bool:
        return getattr(self, "_loaded_is_active", None) is True and not self.is_active


# Loose on purpose: people write numbers many ways; a digit, then digits, spaces, +, -, parentheses, 6-20 of them.
phone_validator = RegexValidator(
    r"^(?=.*[0-9])[0-9 +()\-]{6,20}\Z",
    message="Enter a phone number of 6 to 20 characters: digits, spaces, +, - and parentheses only.",
    code="invalid_phone",
)

# The fields a name and shipping address are made of, in the order forms and pages show them.
ADDRESS_FIELDS = ("full_name", "line1", "line2", "postcode", "city", "country", "phone")


class PostalAddress(models.Model):
    """A name and a shipping address as the customer wrote them: an address book entry, or an order's snapshot."""

    full_name = models.CharField("full name", max_length=150)
    line1 = models.CharField("address line 1", max_length=200)
    line2 = models.CharField("address line 2", max_length=200, blank=True)
    postcode = models.CharField(max_length=20)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 code")  # names: accounts/countries.py
    phone = models.CharField(max_length=20, blank=True, validators=[phone_validator])

    class Meta:
        abstract = True

    @property
    def country_name(self) -> str:
        return country_name(self.country)

    def lines(self) -> list[str]:
        """The address as it is written on a parcel, one line each, empty ones left out."""
        lines = [self.full_name, self.line1, self.line2, f"{self.postcode} {self.city}", self.country_name, self.phone]
        return [line for line in lines if line.strip()]

    def as_fields(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in ADDRESS_FIELDS}


class CustomerAddress(PostalAddress):
    """An entry of a customer's address book; the default one pre-fills checkout."""

    customer = models.ForeignKey(User, on_delete=models.CASCADE, related_name="addresses")
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=models.Q(is_default=True), name="accounts_one_default_address"
            )
        ]

    def __str__(self):
        return ", ".join(self.lines())
