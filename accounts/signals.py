"""When a session ends, its open sockets end too, on every server process."""

import secrets

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.middleware import current_request
from accounts.models import User
from notifications.services import user_sockets_close
from shop.sessions import SOCKET_SESSION_ID, session_socket_id


@receiver(user_logged_in, dispatch_uid="accounts.name_the_session_for_its_sockets")
def name_the_session_for_its_sockets(sender, request, user, **kwargs):
    """Give a new login's session the id its sockets are closed by (kept when its key is cycled)."""
    if SOCKET_SESSION_ID not in request.session:
        request.session[SOCKET_SESSION_ID] = secrets.token_urlsafe(16)


@receiver(user_logged_out, dispatch_uid="accounts.close_sockets_on_logout")
def close_sockets_on_logout(sender, request, user, **kwargs):
    """Logging out closes the sockets of that session (code 4403); the user's other sessions keep theirs."""
    if user is None:
        return
    user_id, session_id = user.pk, session_socket_id(request.session)
    # Once the session row is gone, not now: a handshake reading it in between would join after the close passed.
    request.session.after_delete(lambda _key: user_sockets_close(user_id=user_id, session_id=session_id))


@receiver(post_save, sender=User, dispatch_uid="accounts.close_sockets_on_credentials_change")
def close_sockets_on_credentials_change(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    """Deactivation closes every socket of the user; a new password those of every session but the changing one."""
    if raw or created:
        return
    if instance.deactivated_in_this_save:
        user_sockets_close(user_id=instance.pk)
    elif instance.password_changed_in_this_save:
        user_sockets_close(user_id=instance.pk, except_session_id=_own_session_id(instance))
    instance._loaded_is_active = instance.is_active


def _own_session_id(user: User) -> str | None:
    """The session changing its own user's password, which Django keeps (update_session_auth_hash)."""
    request = current_request()
    if request is None or getattr(request, "user", None) is None or request.user.pk != user.pk:
        return None  # the admin for someone else, a password reset, a shell: every session goes
    return session_socket_id(request.session)
