from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A shop user: a customer, or staff when `is_staff` is set.

    A custom user model from day one, as Django recommends; the email is unique
    because staff search orders by it and customers sign in with a username.
    """

    email = models.EmailField("email address", unique=True)

    def __str__(self):
        return self.email or self.username
