"""Channel-layer group names. Always derived from the server-side user, never from client input.

Every socket joins its user's group; apps register the audiences beyond it (staff, say) from their
`AppConfig.ready()`, each with the rule that says which users belong to it.
"""

import re
from collections.abc import Callable

# The staff's audience: registered by the orders app (orders/apps.py), heard by any app's fan-out to staff.
STAFF_GROUP = "staff"

# A group name the channel layer accepts, that no user's group can take.
AUDIENCE_NAME = re.compile(r"(?!user_)[A-Za-z0-9_.-]{1,99}")

# Whether a user belongs to an audience. It runs on the consumer's event loop, at connect: it reads the user's
# loaded fields and never queries the database.
AudiencePredicate = Callable[[object], bool]

_audiences: dict[str, AudiencePredicate] = {}


def user_group(user_id: int) -> str:
    """The group every socket of one user joins."""
    return f"user_{int(user_id)}"


def audience_register(name: str, predicate: AudiencePredicate) -> None:
    """Make every socket of a user for whom `predicate(user)` holds join the group `name`.

    Registering the same audience again is harmless; another rule under its name is refused.
    """
    if not AUDIENCE_NAME.fullmatch(name):
        raise ValueError(f"An audience's name is 1 to 99 letters, digits, '_', '.' or '-', not user_…: {name!r}")
    registered = _audiences.setdefault(name, predicate)
    if registered is not predicate:
        raise ValueError(f"Audience {name!r} is already registered with {registered!r}")


def user_groups(user) -> list[str]:
    """The groups a socket of `user` (the server-side one) joins: its user's, then every audience it belongs to."""
    return [user_group(user.pk), *(name for name, predicate in _audiences.items() if predicate(user))]
