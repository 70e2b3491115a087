from django import forms


class MarkReadForm(forms.Form):
    """Which notification to mark read; empty means all of them."""

    seq = forms.IntegerField(min_value=1, required=False)
