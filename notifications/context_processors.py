from functools import partial

from notifications.selectors import live_state
from notifications.tickets import socket_ticket_mint


def live(request):
    """The signed-in user's unread count and last seq, rendered into every page, and its socket's connect ticket.

    The live client resumes from this seq, so nothing that happens between the
    page render and the socket opening is missed. Views that render live data
    read `live_last_seq` themselves, before that data, and their value wins.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    state = live_state(user_id=user.pk)
    return {
        "live_last_seq": state.last_seq,
        "live_unread": state.unread.count,
        # A callable, which templates call: minted only by a page that renders the live client.
        "live_ticket": partial(socket_ticket_mint, user=user, session=request.session),
    }
