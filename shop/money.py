"""Money as customers read it: an amount in the shop's one currency (SHOP_CURRENCY), written for their locale.

Amounts stay Decimal from the catalog to the order's rows; only the last step, text for a page or an email,
becomes a string here. CLDR's data (through Babel) knows each locale's symbol, separators and symbol position.
"""

from decimal import Decimal

from babel.numbers import format_currency, is_currency
from django.conf import settings
from django.utils import translation


def currency_code_check(code: str) -> str:
    """An ISO 4217 code CLDR knows ("EUR"), for SHOP_CURRENCY; ValueError names what is wrong."""
    if not is_currency(code):
        raise ValueError(f"SHOP_CURRENCY must be an ISO 4217 currency code such as EUR or USD, not {code!r}.")
    return code


def money_format(amount: Decimal, *, language: str | None = None) -> str:
    """`amount` in SHOP_CURRENCY, as the language active for this request or email writes it (€1,234.50)."""
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    return format_currency(amount, settings.SHOP_CURRENCY, locale=translation.to_locale(language))
