from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse

from accounts.models import PostalAddress
from orders.carriers import TRACKING_NUMBER_MAX_LENGTH, Tracking, tracking_of


class OrderStatus(models.TextChoices):
    """An order's lifecycle. Which move is allowed lives in `orders.transitions`."""

    PENDING_PAYMENT = "pending_payment", "Pending payment"
    PAID = "paid", "Paid"
    PROCESSING = "processing", "Processing"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


ORDER_NUMBER_PREFIX = "SO-"
# What format_order_number() makes: the prefix and at least six ASCII digits (the field holds 20 characters).
ORDER_NUMBER_PATTERN = ORDER_NUMBER_PREFIX + "[0-9]{6,17}"


class OrderQuerySet(models.QuerySet):
    """Orders' queries. Their bulk writes refuse the status: only `order_transition` changes it.

    The guards (orders/status_writes.py) are imported where they are used: that module needs orders.transitions,
    which needs this one.
    """

    def update(self, **kwargs):
        from orders.status_writes import orders_write_refuse_status

        orders_write_refuse_status(kwargs, write="Order QuerySet.update(status=...)")
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        from orders.status_writes import orders_write_refuse_status

        orders_write_refuse_status(fields, write="Order bulk_update(..., ['status'])")
        return super().bulk_update(objs, fields, batch_size=batch_size)

    # Django 5.2's signature exactly, so no argument, positional or not, reaches it unchecked.
    def bulk_create(
        self,
        objs,
        batch_size=None,
        ignore_conflicts=False,
        update_conflicts=False,
        update_fields=None,
        unique_fields=None,
    ):
        from orders.status_writes import orders_create_refuse_status, orders_write_refuse_status

        objs = list(objs)
        orders_write_refuse_status(update_fields, write="Order bulk_create(update_fields=['status'])")
        orders_create_refuse_status(objs)
        return super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )


class Order(models.Model):
    """A customer's order. Its status changes only through `orders.transitions.order_transition`.

    Any other write of it is refused (orders/status_writes.py).
    """

    # Null until the row has a primary key, then "SO-000123"; NULLs never collide
    # under the unique constraint, so concurrent checkouts cannot clash.
    number = models.CharField(max_length=20, unique=True, null=True, editable=False)  # noqa: DJ001 (NULLs: see above)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT, db_index=True
    )
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    note = models.TextField("delivery note", blank=True, max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every transition: a form that loaded version N cannot overwrite N+1.
    version = models.PositiveIntegerField(default=1)
    # Given with the move to shipped (orders/carriers.py checks them) and kept by every later status.
    carrier = models.CharField(max_length=20, blank=True)
    tracking_number = models.CharField(max_length=TRACKING_NUMBER_MAX_LENGTH, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(carrier="", tracking_number="")
                | (~models.Q(carrier="") & ~models.Q(tracking_number="")),
                name="order_tracking_carrier_and_number_together",
            )
        ]
        # Django's own lookups and writes of related orders go through the guarded queryset too.
        base_manager_name = "objects"

    def __str__(self):
        return self.number or f"Order #{self.pk}"

    def save(self, *args, force_insert=False, force_update=False, using=None, update_fields=None):
        """Save, writing the status and version only when `order_transition` saves (orders/status_writes.py)."""
        from orders.status_writes import order_save_fields

        if args:  # positional arguments: deprecated by Django, parsed (and warned about) as it does
            force_insert, force_update, using, update_fields = self._parse_save_params(
                *args,
                method_name="save",
                force_insert=force_insert,
                force_update=force_update,
                using=using,
                update_fields=update_fields,
            )
        update_fields = order_save_fields(self, update_fields=update_fields, force_insert=force_insert)
        super().save(force_insert=force_insert, force_update=force_update, using=using, update_fields=update_fields)

    def get_absolute_url(self):
        return reverse("orders:detail", kwargs={"number": self.number})

    @classmethod
    def from_db(cls, db, field_names, values):
        order = super().from_db(db, field_names, values)
        # The status as loaded, so a save can tell a real status change from any other (status_writes, signals).
        order._loaded_status = order.status if "status" in field_names else None
        return order

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        # What is stored now is what the next save compares against (a deferred status loads through here too).
        if (fields is None or "status" in fields) and "status" in self.__dict__:
            self._loaded_status = self.status

    @property
    def loaded_status(self) -> str | None:
        """The status this instance had when it was read from the database (None if new)."""
        return getattr(self, "_loaded_status", None)

    @property
    def tracking(self) -> Tracking | None:
        """The shipment's carrier, number and tracking link, once it shipped with them."""
        return tracking_of(carrier=self.carrier, number=self.tracking_number)


def format_order_number(pk: int) -> str:
    return f"{ORDER_NUMBER_PREFIX}{pk:06d}"


class OrderItem(models.Model):
    """A line of an order, with the product's name and price as they were at checkout."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey("shop.Product", on_delete=models.PROTECT, related_name="+")
    product_name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_item_quantity_positive")]

    def __str__(self):
        return f"{self.quantity} × {self.product_name}"


class OrderAddress(PostalAddress):
    """The name and shipping address an order was placed with: a copy, so editing the address book never changes it.

    Written with the order by `order_place`; orders placed before checkout asked for one have none.
    """

    order = models.OneToOneField(Order, on_delete=models.CASCADE, primary_key=True, related_name="shipping_address")

    def __str__(self):
        return ", ".join(self.lines())


class OrderEventType(models.TextChoices):
    PLACED = "placed", "Order placed"
    STATUS_CHANGED = "status_changed", "Status changed"


class ChangedBy(models.TextChoices):
    """Who made a change, as its customer is told: the same words on the order page and in the live frame."""

    SYSTEM = "system", "system"  # the payment provider, the warehouse, scheduled tasks
    CUSTOMER = "customer", "you"
    STAFF = "staff", "staff"


def changed_by_of(*, actor_id: int | None, customer_id: int) -> ChangedBy:
    return ChangedBy.SYSTEM if actor_id is None else ChangedBy.CUSTOMER if actor_id == customer_id else ChangedBy.STAFF


class OrderEvent(models.Model):
    """One entry of an order's append-only history, written in the same transaction as the change."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=20, choices=OrderEventType.choices)
    old_status = models.CharField(max_length=20, choices=OrderStatus.choices, blank=True)
    new_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    # Null for changes made by the system (payment provider, scheduled tasks).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the customer reads with the change: their order page's timeline and the notification.
    customer_message = models.TextField("message to the customer (shown to them)", blank=True, max_length=1000)
    # Staff only: never in a customer's page, notification payload or socket frame.
    internal_note = models.TextField("internal note (never shown to the customer)", blank=True, max_length=1000)
    # What staff entered with the move to shipped, as the order got it.
    carrier = models.CharField(max_length=20, blank=True)
    tracking_number = models.CharField(max_length=TRACKING_NUMBER_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.order}: {self.old_status or '—'} → {self.new_status}"

    def save(self, *args, **kwargs):
        # History is append-only: an event, once written, is never rewritten.
        if not self._state.adding:
            raise ValueError("OrderEvent rows are append-only")
        super().save(*args, **kwargs)

    @property
    def changed_by(self) -> ChangedBy:
        # `order.events.all()` hands each event its order: no query.
        return changed_by_of(actor_id=self.actor_id, customer_id=self.order.customer_id)

    @property
    def tracking(self) -> Tracking | None:
        """What the order shipped with, when this is the move to shipped and staff gave it."""
        return tracking_of(carrier=self.carrier, number=self.tracking_number)
