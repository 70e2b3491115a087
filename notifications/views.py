import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications.forms import MarkReadForm, NotificationPreferencesForm
from notifications.kinds import Channel
from notifications.models import Notification
from notifications.preferences import notification_preferences_save, notification_topics, offline_channels_chosen
from notifications.push import push_enabled
from notifications.push_subscriptions import (
    PushSubscriptionInvalid,
    push_subscription_count,
    push_subscription_delete,
    push_subscription_parse,
    push_subscription_save,
)
from notifications.selectors import last_seq
from notifications.services import notifications_mark_read
from notifications.unsubscribe import (
    UnsubscribeLinkInvalid,
    notification_unsubscribe,
    unsubscribe_read,
    unsubscribe_topics_on,
)

# A subscription is an endpoint of at most 2048 characters and two short keys: anything much larger is not one.
PUSH_SUBSCRIPTION_MAX_BYTES = 4096


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


@login_required
def notification_preferences(request):
    """Which channels each topic reaches me on: in-app always, email, and browser push once a browser subscribed."""
    topics = notification_topics()
    current = offline_channels_chosen(user_id=request.user.pk)
    push_on = push_enabled()
    shown = [Channel.EMAIL, Channel.PUSH] if push_on else [Channel.EMAIL]
    # Until one of my browsers subscribed, push choices reach nobody: the column shows them but cannot change them.
    push_subscribed = push_on and push_subscription_count(user_id=request.user.pk) > 0
    editable = [channel for channel in shown if channel != Channel.PUSH or push_subscribed]
    form = NotificationPreferencesForm(
        request.POST if request.method == "POST" else None, topics=topics, channels=editable
    )
    if form.is_valid():
        notification_preferences_save(user_id=request.user.pk, chosen=form.chosen(current=current))
        messages.success(request, "Your notification preferences are saved. They apply to notifications from now on.")
        return redirect("notifications:preferences")
    context = {
        "form": form,
        "rows": form.rows(current=current, shown=shown),
        "shown": shown,
        "push_enabled": push_on,
        "push_subscribed": push_subscribed,
        "vapid_public_key": settings.WEBPUSH_VAPID_PUBLIC_KEY,
    }
    return render(request, "notifications/preferences.html", context, status=400 if form.is_bound else 200)


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_http_methods(["POST", "DELETE"])
def push_subscription(request):
    """This browser's push subscription: POST what `PushSubscription.toJSON()` gives, DELETE `{"endpoint"}`.

    JSON in and out, CSRF-checked like any form (the page sends the token header); malformed is a 400 that
    says what is wrong, and nothing is stored.
    """
    if not request.user.is_authenticated:
        return _json_error("Log in to turn browser notifications on or off.", 403)
    if not push_enabled():
        return _json_error("Browser notifications are not set up on this shop.", 404)
    if len(request.body) > PUSH_SUBSCRIPTION_MAX_BYTES:
        return _json_error(f"The subscription is larger than {PUSH_SUBSCRIPTION_MAX_BYTES} bytes.", 413)
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        return _json_error("The body must be JSON.", 400)
    if request.method == "DELETE":
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        if not isinstance(endpoint, str) or not endpoint:
            return _json_error("endpoint: missing (the subscription's URL)", 400)
        deleted = push_subscription_delete(user_id=request.user.pk, endpoint=endpoint)
        count = push_subscription_count(user_id=request.user.pk)
        return JsonResponse({"subscribed": False, "deleted": deleted, "subscriptions": count})
    try:
        subscription = push_subscription_parse(data=data)
    except PushSubscriptionInvalid as error:
        return _json_error(str(error), 400)
    created = push_subscription_save(
        user_id=request.user.pk, subscription=subscription, user_agent=request.headers.get("User-Agent", "")
    )
    count = push_subscription_count(user_id=request.user.pk)
    return JsonResponse({"subscribed": True, "subscriptions": count}, status=201 if created else 200)


@require_GET
def service_worker(request):
    """The service worker (static/js/sw.js), served from the site's root: a worker controls the pages under its
    own path, so only there does it reach every page (and open or focus the order page on a click)."""
    with open(finders.find("js/sw.js"), "rb") as source:
        response = HttpResponse(source.read(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # a new deploy's worker is picked up on the next visit
    return response
