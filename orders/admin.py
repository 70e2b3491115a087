from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.utils import formats, timezone
from django.utils.text import capfirst

from orders.models import Order, OrderEvent, OrderEventType, OrderItem, OrderStatus
from orders.selectors import order_status_changes_seen
from orders.transitions import StaleOrder, can_transition, next_statuses, order_transition, orders_transition_bulk


class OrderAdminForm(forms.ModelForm):
    """Changes an order's status, and nothing else, through the transition table.

    `loaded_version` is the order's version when the form was rendered: saving a
    form that someone else's change has overtaken is refused, not silently applied.
    """

    loaded_version = forms.IntegerField(widget=forms.HiddenInput)
    # Two fields, so staff always know who will read what they write with a status change.
    customer_message = forms.CharField(
        label="Message to the customer",
        help_text="Visible to the customer: on their order page and in their notification.",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    internal_note = forms.CharField(
        label="Internal note",
        help_text="Internal, never shown to the customer: staff see it in the History below.",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = Order
        fields = ["status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        order = self.instance
        self.fields["loaded_version"].initial = order.version
        # Offer only what the table allows; anything else posted is "not a valid choice".
        allowed = [order.status, *next_statuses(order.status)]
        self.fields["status"].choices = [(status, OrderStatus(status).label) for status in allowed]

    def clean(self):
        cleaned = super().clean()
        status, loaded_version = cleaned.get("status"), cleaned.get("loaded_version")
        if status is None or loaded_version is None:
            return cleaned
        # The admin's change view runs in one transaction: this lock is held until the save.
        current = Order.objects.select_for_update().get(pk=self.instance.pk)
        if current.version != loaded_version:
            raise ValidationError(str(StaleOrder(current)), code="stale")
        if status != current.status and not can_transition(current.status, status):
            raise ValidationError(
                f"An order that is {OrderStatus(current.status).label.lower()} cannot become "
                f"{OrderStatus(status).label.lower()}.",
                code="invalid_transition",
            )
        return cleaned


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ["product_name", "unit_price", "quantity", "line_total"]
    readonly_fields = fields


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    verbose_name_plural = "History"
    fields = [
        "created_at", "type", "old_status", "new_status", "actor", "customer_message", "internal_note", "seen",
    ]  # fmt: skip
    readonly_fields = fields
    seen_at: dict = {}

    def get_queryset(self, request):
        # Each row is titled with the event's str(), which names its order: one join, not a query per event.
        return super().get_queryset(request).select_related("order", "actor")

    def get_formset(self, request, obj=None, **kwargs):
        # Read once for the whole history (this inline is made for each request), not once per event.
        self.seen_at = order_status_changes_seen(order=obj) if obj is not None else {}
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Seen by the customer")
    def seen(self, event: OrderEvent) -> str:
        """When a page of the customer's first showed this change's notification (its delivery receipt)."""
        if event.type != OrderEventType.STATUS_CHANGED:
            return "—"
        seen_at = self.seen_at.get((event.old_status, event.new_status))
        if seen_at is None:
            return "not yet"
        return f"seen by the customer at {formats.date_format(timezone.localtime(seen_at), 'DATETIME_FORMAT')}"


class OrderChangeList(ChangeList):
    def get_filters(self, request):
        """Django's filters, with a date-hierarchy year past any date (`?created_at__year=99…9`, or 9999) refused."""
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as error:
            # Django turns only a ValueError of int() and datetime() into this; the admin answers it with ?e=1.
            raise IncorrectLookupParameters(error) from error


def _bulk_transition_action(to_status: OrderStatus):
    """An admin action that moves every selected order to `to_status` through the transition table."""

    def action(modeladmin, request, queryset):
        result = orders_transition_bulk(
            order_ids=list(queryset.values_list("pk", flat=True)), to_status=to_status, actor=request.user
        )
        label = to_status.label.lower()
        if result.changed:
            modeladmin.message_user(request, f"{len(result.changed)} order(s) marked {label}.", messages.SUCCESS)
        if result.skipped:
            reasons = " ".join(reason for _, reason in result.skipped[:10])
            more = f" …and {len(result.skipped) - 10} more." if len(result.skipped) > 10 else ""
            modeladmin.message_user(
                request, f"{len(result.skipped)} order(s) skipped: {reasons}{more}", messages.WARNING
            )

    action.__name__ = f"mark_{to_status.value}"
    return admin.action(description=f"Mark selected orders as {to_status.label.lower()}", permissions=["change"])(
        action
    )


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    list_display = ["number", "customer", "status", "total", "updated_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["number", "customer__email"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    readonly_fields = ["number", "customer", "total", "note", "created_at", "updated_at", "version"]
    fieldsets = [
        (None, {"fields": ["number", "customer", "total", "note", "created_at", "updated_at"]}),
        ("Status", {"fields": ["status", "customer_message", "internal_note", "loaded_version", "version"]}),
    ]
    inlines = [OrderItemInline, OrderEventInline]
    actions = [
        _bulk_transition_action(status)
        for status in (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED)
    ]

    def get_changelist(self, request, **kwargs):
        return OrderChangeList

    def has_add_permission(self, request):
        # Orders come from checkout; history must never be forged or erased here.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def response_action(self, request, queryset):
        """Refuse a tampered selection (ids that are not numbers) with a message, not a 500."""
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(value.isascii() and value.isdigit() for value in selected):
            self.message_user(request, "That selection is not valid; select orders and try again.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def save_model(self, request, obj, form, change):
        """Apply a status change through the transition function instead of `obj.save()`."""
        to_status = form.cleaned_data["status"]
        if to_status == obj.loaded_status:
            return
        order_transition(
            order_id=obj.pk,
            to_status=to_status,
            actor=request.user,
            customer_message=form.cleaned_data["customer_message"],
            internal_note=form.cleaned_data["internal_note"],
            expected_version=form.cleaned_data["loaded_version"],
        )
        obj.refresh_from_db()


admin.site.site_header = capfirst("shop administration")
