from django import forms

from orders.services import MAX_QUANTITY_PER_LINE


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
