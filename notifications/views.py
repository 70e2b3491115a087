from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from notifications.forms import MarkReadForm
from notifications.models import Notification
from notifications.selectors import last_seq
from notifications.services import notifications_mark_read
from notifications.unsubscribe import (
    UnsubscribeLinkInvalid,
    notification_unsubscribe,
    unsubscribe_read,
    unsubscribe_topics_on,
)


@login_required
def notification_list(request):
    """The notification centre: my notifications, newest first."""
    # Read before the list: the socket resumes after this seq, so nothing slips between.
    live_last_seq = last_seq(user_id=request.user.pk)
    notifications = Paginator(Notification.objects.filter(recipient=request.user).order_by("-seq"), 20).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "notifications/notification_list.html",
        {"notifications": notifications, "live_last_seq": live_last_seq},
    )


@login_required
@require_POST
def notification_mark_read(request):
    """Mark one notification (by seq) or, without a seq, all of mine read; every open tab hears of it."""
    form = MarkReadForm(request.POST)
    if form.is_valid():
        notifications_mark_read(user_id=request.user.pk, seq=form.cleaned_data["seq"])
    return redirect("notifications:list")


# Mail providers send RFC 8058's one-click POST with no cookie and no CSRF token; the signed link is what authorises it.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """An email's unsubscribe link: GET asks to confirm (mail scanners follow links), POST turns that email off."""
    try:
        link = unsubscribe_read(token=token)
    except UnsubscribeLinkInvalid as error:
        return render(request, "notifications/unsubscribe.html", {"state": "invalid", "error": error}, status=400)
    if request.method == "POST":
        turned_off = notification_unsubscribe(unsubscribe=link)
        state = "done" if turned_off else "already"
    else:
        state = "confirm" if unsubscribe_topics_on(unsubscribe=link) else "already"
    return render(request, "notifications/unsubscribe.html", {"state": state, "topics": link.topics})
