"""The staff inbox, in the admin where staff work: the conversations' change list is the support queue.

/admin/support/conversation/ lists the conversations (awaiting a reply first, the longest waiting first), each
linked to its order's change page, where it is read and answered; `rows/` gives the same rows as JSON, which the
page (static/js/pages/support-inbox.js) fetches again whenever the socket says a conversation changed.
"""

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from support.models import Conversation
from support.rules import inbox_viewer
from support.selectors import Inbox, InboxRow, inbox

# The inbox's filter (`?show=`): the queue by default, or every conversation.
SHOW_AWAITING, SHOW_ALL = "awaiting", "all"


def _iso(when) -> str | None:
    return None if when is None else when.isoformat(timespec="microseconds")


def inbox_summary(queue: Inbox, *, show: str) -> str:
    """What the page says above the rows (the live page sets the same words from the JSON)."""
    noun = "conversation" if queue.total == 1 else "conversations"
    said = f"{queue.total} {noun} awaiting a reply" if show == SHOW_AWAITING else f"{queue.total} {noun}"
    return said if len(queue.rows) == queue.total else f"{said}; the first {len(queue.rows)} are shown"


def inbox_row_payload(row: InboxRow) -> dict:
    """A row as the live page rebuilds it: every value is data, inserted as text."""
    last = row.last_message
    return {
        "order": {
            "id": row.order_id,
            "number": row.order_number,
            "url": reverse("admin:orders_order_change", args=[row.order_id]),
        },
        "customer": row.customer_name,
        "last_message": None
        if last is None
        else {
            "excerpt": row.excerpt,
            "created_at": _iso(last.created_at),
            "author": {"name": row.last_author_name, "is_staff": last.from_staff},
        },
        "awaiting_reply": row.awaiting_reply,
        "waiting_since": _iso(row.waiting_since),
        "unread": row.unread,
    }


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """The inbox (the change list) and its rows as JSON; nothing here adds, edits or deletes a conversation."""

    def get_urls(self):
        # Only these two: a conversation is read and answered on its order's change page.
        info = self.opts.app_label, self.opts.model_name
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name="{}_{}_changelist".format(*info)),
            path("rows/", self.admin_site.admin_view(self.rows_view), name="{}_{}_rows".format(*info)),
        ]

    def has_view_permission(self, request, obj=None):
        return inbox_viewer(request.user)

    def has_add_permission(self, request):
        return False  # a conversation starts with its first message

    def has_change_permission(self, request, obj=None):
        return False  # messages are append-only, and posted on the order's page

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        """The inbox page, rendered with its rows (the live page then refreshes them)."""
        show, queue = self._queue(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Support inbox",
            "opts": self.opts,
            "queue": queue,
            "summary": inbox_summary(queue, show=show),
            "show": show,
            "rows_url": reverse("admin:support_conversation_rows"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/support/conversation/inbox.html", context)

    def rows_view(self, request):
        """The inbox's rows as JSON, for the same `?show=`."""
        show, queue = self._queue(request)
        return JsonResponse(
            {
                "show": show,
                "total": queue.total,
                "summary": inbox_summary(queue, show=show),
                "rows": [inbox_row_payload(row) for row in queue.rows],
            }
        )

    def _queue(self, request) -> tuple[str, Inbox]:
        """The filter asked for (anything but "all" is the queue) and its rows; staff who may not view it get 403."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        show = SHOW_ALL if request.GET.get("show") == SHOW_ALL else SHOW_AWAITING
        return show, inbox(awaiting_only=show == SHOW_AWAITING, max_rows=settings.CHAT_INBOX_MAX_ROWS)
