from django import forms

from orders.services import MAX_QUANTITY_PER_LINE
from shop.selectors import CATALOG_DEFAULT_SORT, CATALOG_SORTS


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY_PER_LINE, initial=1)


class CartLineForm(forms.Form):
    """A new quantity for a cart line; zero removes the line."""

    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY_PER_LINE)


class CheckoutForm(forms.Form):
    note = forms.CharField(
        label="Delivery note",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Leave it with the neighbours…"}),
    )
    save_address = forms.BooleanField(label="Save this address for my next order", required=False, initial=True)


class CatalogQueryForm(forms.Form):
    """What the catalog page was asked for: words to look for and an order (both optional)."""

    q = forms.CharField(label="Search", required=False, max_length=100)
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[(value, sort.label) for value, sort in CATALOG_SORTS.items()],
    )

    def catalog(self) -> dict:
        """The arguments of `catalog_products`: the valid fields' values, the defaults for the others."""
        cleaned = getattr(self, "cleaned_data", {})
        return {"search": cleaned.get("q", ""), "sort": cleaned.get("sort") or CATALOG_DEFAULT_SORT}
