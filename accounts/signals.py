"""When a user's sessions end, their open sockets end too, on every server process."""

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import User
from notifications.services import user_sockets_close


@receiver(user_logged_out, dispatch_uid="accounts.close_sockets_on_logout")
def close_sockets_on_logout(sender, request, user, **kwargs):
    """Logging out closes every socket of that user (code 4403)."""
    if user is not None:
        user_sockets_close(user_id=user.pk)


@receiver(post_save, sender=User, dispatch_uid="accounts.close_sockets_on_credentials_change")
def close_sockets_on_credentials_change(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    """A new password or a deactivated account closes every socket of that user."""
    if raw or created:
        return
    if instance.password_changed_in_this_save or instance.deactivated_in_this_save:
        user_sockets_close(user_id=instance.pk)
    instance._loaded_is_active = instance.is_active
