from django.contrib import admin

from shop.models import Product
from shop.money import money_format


def money_column(field: str, description: str):
    """A ModelAdmin attribute to name as a column or read-only field: a Decimal field as money (€24.00)."""

    @admin.display(description=description, ordering=field)
    def show(obj):
        amount = getattr(obj, field)
        return "—" if amount is None else money_format(amount)  # None: the blank row an inline renders

    return staticmethod(show)  # called with the object alone, as a column's function is


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price_money", "stock", "is_active"]
    price_money = money_column("price", "Price")
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
