from notifications.selectors import last_seq, unread_count


def live(request):
    """The signed-in user's unread count and last seq, rendered into every page.

    The live client resumes from this seq, so nothing that happens between the
    page render and the socket opening is missed. Views that render live data
    read `live_last_seq` themselves, before that data, and their value wins.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"live_last_seq": last_seq(user_id=user.pk), "live_unread": unread_count(user_id=user.pk)}
