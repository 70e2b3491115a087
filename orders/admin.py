from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from orders.carriers import Tracking, TrackingInvalid, carrier_choices
from orders.models import Order, OrderAddress, OrderEvent, OrderEventType, OrderItem, OrderStatus
from orders.selectors import order_status_changes_seen
from orders.transitions import (
    BulkTransitionResult,
    StaleOrder,
    can_transition,
    next_statuses,
    order_tracking_validate,
    order_transition,
)
from orders.transitions_bulk import orders_transition_bulk
from shop.admin import money_column
from support.selectors import conversation_page

# The most orders the "mark shipped" page lists at once, each with its own tracking number field.
SHIP_AT_ONCE_MAX = 100


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
    carrier = forms.ChoiceField(label="Carrier", choices=[("", "—"), *carrier_choices()], required=False)
    tracking_number = forms.CharField(
        label="Tracking number",
        help_text="With the move to shipped: the customer gets the carrier's tracking link.",
        required=False,
    )

    class Meta:
        model = Order
        fields = ["status"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["loaded_version"].initial = self.instance.version
        if not self.is_bound:
            self._offer_statuses_from(self.instance.status)
        # A posted status is judged by clean() against the order as it is now, so a form that someone else's change
        # overtook says so, rather than "Select a valid choice" for a status that is no longer on offer.

    def _offer_statuses_from(self, status: str) -> None:
        """Offer only what the table allows from `status`, and say what that is."""
        following = next_statuses(status)
        self.fields["status"].choices = [(s, OrderStatus(s).label) for s in (status, *following)]
        label = OrderStatus(status).label.lower()
        self.fields["status"].help_text = (
            f"From {label} it can go to: {', '.join(OrderStatus(s).label.lower() for s in following)}."
            if following
            else f"{OrderStatus(status).label} is final: no status can follow it."
        )

    def clean(self):
        cleaned = super().clean()
        status, loaded_version = cleaned.get("status"), cleaned.get("loaded_version")
        if status is None or loaded_version is None:
            self._offer_statuses_from(self.instance.status)
            return cleaned
        # The admin's change view runs in one transaction: this lock is held until the save.
        current = Order.objects.select_for_update().get(pk=self.instance.pk)
        self._offer_statuses_from(current.status)  # if the form comes back with an error, it offers what is true now
        if current.version != loaded_version:
            raise ValidationError(str(StaleOrder(current)), code="stale")
        if status != current.status and not can_transition(current.status, status):
            self.add_error(
                "status",
                ValidationError(
                    f"An order that is {OrderStatus(current.status).label.lower()} cannot become "
                    f"{OrderStatus(status).label.lower()}.",
                    code="invalid_transition",
                ),
            )
            return cleaned
        if "carrier" in cleaned:  # else its choice was refused already
            try:
                order_tracking_validate(
                    to_status=status if status != current.status else "",
                    carrier=cleaned["carrier"],
                    tracking_number=cleaned.get("tracking_number", ""),
                )
            except TrackingInvalid as error:
                self.add_error(error.field, str(error))
        return cleaned


class ShipOrdersForm(forms.Form):
    """The "mark shipped" page: one carrier for all the orders, or a row's own, and each order's tracking number.

    Rows come from the selected orders as the server reads them, never from the posted data. An order left without
    a number ships without tracking.
    """

    carrier = forms.ChoiceField(
        label="Carrier", choices=[("", "—"), *carrier_choices()], required=False, help_text="For every order below"
    )

    def __init__(self, *args, orders: list[Order], **kwargs):
        super().__init__(*args, **kwargs)
        self.orders = orders
        self.tracking: dict[int, Tracking] = {}  # by order id, once valid
        for order in orders:
            self.fields[f"carrier_{order.pk}"] = forms.ChoiceField(
                label=f"Carrier of {order.number}", choices=[("", "as above"), *carrier_choices()], required=False
            )
            self.fields[f"number_{order.pk}"] = forms.CharField(
                label=f"Tracking number of {order.number}",
                required=False,
                widget=forms.TextInput(attrs={"size": 30, "autocomplete": "off"}),
            )

    def rows(self):
        """(order, its carrier field, its number field), for the template."""
        return [(order, self[f"carrier_{order.pk}"], self[f"number_{order.pk}"]) for order in self.orders]

    def clean(self):
        cleaned = super().clean()
        carrier_above_used = False
        for order in self.orders:
            carrier_field, number_field = f"carrier_{order.pk}", f"number_{order.pk}"
            if carrier_field not in cleaned or "carrier" not in cleaned:
                continue  # an unknown carrier, refused already
            number = cleaned.get(number_field, "")
            # The carrier above counts for the rows that have a number; a row's own carrier always does.
            carrier = cleaned[carrier_field]
            if not carrier and number.strip():
                carrier, carrier_above_used = cleaned["carrier"], True
            try:
                tracking = order_tracking_validate(
                    to_status=OrderStatus.SHIPPED, carrier=carrier, tracking_number=number
                )
            except TrackingInvalid as error:
                self.add_error(carrier_field if error.field == "carrier" else number_field, str(error))
            else:
                if tracking is not None:
                    self.tracking[order.pk] = tracking
        if cleaned.get("carrier") and not carrier_above_used and not self.errors:
            self.add_error("carrier", "Enter the tracking numbers of the orders that ship with this carrier.")
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
    fields = ["product_name", "unit_price_money", "quantity", "line_total_money"]
    readonly_fields = fields
    unit_price_money = money_column("unit_price", "Unit price")
    line_total_money = money_column("line_total", "Line total")


def tracking_link(tracking: Tracking | None):
    """A carrier's tracking link as the admin shows it: label and number as text, the URL built from them."""
    if tracking is None:
        return "—"
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer">{} {}</a>',
        tracking.url,
        tracking.carrier.label,
        tracking.number,
    )


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    verbose_name_plural = "History"
    fields = [
        "created_at",
        "type",
        "old_status",
        "new_status",
        "actor",
        "customer_message",
        "internal_note",
        "tracking",
        "seen",
    ]
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

    @admin.display(description="tracking")
    def tracking(self, event):
        return tracking_link(event.tracking)


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
        _report_bulk(modeladmin, request, result, to_status)

    action.__name__ = f"mark_{to_status.value}"
    return admin.action(description=f"Mark selected orders as {to_status.label.lower()}", permissions=["change"])(
        action
    )


def _report_bulk(modeladmin, request, result: BulkTransitionResult, to_status: OrderStatus) -> None:
    label = to_status.label.lower()
    if result.changed:
        modeladmin.message_user(request, f"{len(result.changed)} order(s) marked {label}.", messages.SUCCESS)
    if result.skipped:
        reasons = " ".join(reason for _, reason in result.skipped[:10])
        more = f" …and {len(result.skipped) - 10} more." if len(result.skipped) > 10 else ""
        modeladmin.message_user(request, f"{len(result.skipped)} order(s) skipped: {reasons}{more}", messages.WARNING)


@admin.action(description="Mark selected orders as shipped", permissions=["change"])
def mark_shipped(modeladmin, request, queryset):
    """Ship the selected orders after a page that takes each one's tracking number (Django's confirmation style)."""
    if queryset.count() > SHIP_AT_ONCE_MAX:
        modeladmin.message_user(
            request, f"Select at most {SHIP_AT_ONCE_MAX} orders to ship at once; nothing was changed.", messages.ERROR
        )
        return None
    selected = list(queryset.select_related("customer").order_by("pk"))
    shippable = [order for order in selected if can_transition(order.status, OrderStatus.SHIPPED)]
    confirmed = "ship" in request.POST or not shippable  # with no order that can ship there is nothing to ask
    form = ShipOrdersForm(request.POST if confirmed else None, orders=shippable)
    if form.is_valid():
        result = orders_transition_bulk(
            order_ids=[order.pk for order in selected],
            to_status=OrderStatus.SHIPPED,
            actor=request.user,
            tracking=form.tracking,
        )
        _report_bulk(modeladmin, request, result, OrderStatus.SHIPPED)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Mark orders as shipped",
        "opts": modeladmin.model._meta,
        "form": form,
        "selected": selected,
        "skipped": [order for order in selected if order not in shippable],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/orders/order/ship_orders.html", context)


# What the change page shows of the order above its status, none of it editable.
ORDER_SUMMARY_FIELDS = ["number", "customer", "ship_to", "total_money", "note", "created_at", "updated_at"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    list_display = ["number", "customer", "status", "total_money", "updated_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    # Staff look a customer up by what the customer tells them: the order's number, an email or a name.
    search_fields = ["number", "customer__email", "customer__first_name", "customer__last_name", "customer__username"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    readonly_fields = [*ORDER_SUMMARY_FIELDS, "version", "tracking"]
    inlines = [OrderItemInline, OrderEventInline]
    total_money = money_column("total", "Total")
    actions = [
        _bulk_transition_action(OrderStatus.PAID),  # payments confirmed outside the shop (a bank transfer)
        _bulk_transition_action(OrderStatus.PROCESSING),
        mark_shipped,
        _bulk_transition_action(OrderStatus.DELIVERED),
        _bulk_transition_action(OrderStatus.CANCELLED),
    ]

    def get_fieldsets(self, request, obj=None):
        # The tracking inputs while the order can still ship; its tracking link once it has one.
        can_ship = obj is not None and can_transition(obj.status, OrderStatus.SHIPPED)
        shipping = ["carrier", "tracking_number"] if can_ship else ["tracking"] if obj and obj.tracking else []
        return [
            (
                None,
                {"fields": ORDER_SUMMARY_FIELDS},
            ),
            (
                "Status",
                {"fields": ["status", *shipping, "customer_message", "internal_note", "loaded_version", "version"]},
            ),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # Only the status is written through the model form; the other inputs are order_transition's arguments
        # (the order's own carrier and number fields must not take posted values before they are checked).
        kwargs["fields"] = ["status"]
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="ship to")
    def ship_to(self, order):
        """The address snapshot the order was placed with, a line each (escaped); "—" for older orders."""
        try:
            address = order.shipping_address
        except OrderAddress.DoesNotExist:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in address.lines()))

    @admin.display(description="tracking")
    def tracking(self, order):
        return tracking_link(order.tracking)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The order's conversation below the form (templates/admin/orders/order/change_form.html), notes included.
        if obj is not None:
            context["conversation"] = conversation_page(
                order_id=obj.pk, staff_view=True, limit=settings.CHAT_MAX_BACKLOG
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

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
            carrier=form.cleaned_data["carrier"],
            tracking_number=form.cleaned_data["tracking_number"],
        )
        obj.refresh_from_db()


admin.site.site_header = capfirst("shop administration")
