from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from notifications.forms import MarkReadForm
from notifications.models import Notification
from notifications.selectors import last_seq
from notifications.services import notifications_mark_read


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
