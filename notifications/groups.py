"""Channel-layer group names. Always derived from the server-side user, never from client input."""

STAFF_GROUP = "staff"


def user_group(user_id: int) -> str:
    """The group every socket of one user joins."""
    return f"user_{int(user_id)}"
