from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower


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
