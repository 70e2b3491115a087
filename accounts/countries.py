"""The countries the shop ships to (SHOP_SHIPPING_COUNTRIES, ISO 3166-1 alpha-2), named by CLDR through Babel."""

from babel import Locale
from django.conf import settings
from django.utils import translation

# Where the shop ships unless SHOP_SHIPPING_COUNTRIES says otherwise: the EU, and its neighbours in Europe.
DEFAULT_SHIPPING_COUNTRIES = (
    "AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LT LU LV MT NL NO PL PT RO SE SI SK"
).split()

_ENGLISH = Locale.parse("en")


def country_codes_check(codes: list[str]) -> list[str]:
    """The codes, upper-cased, if each is an ISO 3166-1 alpha-2 code CLDR names; else ValueError naming one."""
    checked = [code.strip().upper() for code in codes]
    for code in checked:
        if len(code) != 2 or not code.isalpha() or code not in _ENGLISH.territories:
            raise ValueError(
                f"SHOP_SHIPPING_COUNTRIES must list ISO 3166-1 alpha-2 codes such as DE or FR, not {code!r}."
            )
    if not checked:
        raise ValueError("SHOP_SHIPPING_COUNTRIES must list at least one country.")
    return checked


def _locale() -> Locale:
    language = translation.get_language() or settings.LANGUAGE_CODE
    return Locale.parse(translation.to_locale(language))


def country_name(code: str) -> str:
    """The country's name in the active language ("Germany"), or the code itself if CLDR does not know it."""
    return _locale().territories.get(code, code)


def shipping_country_choices() -> list[tuple[str, str]]:
    """(code, name) of each country the shop ships to, by name in the active language, for a form's select."""
    names = _locale().territories
    return sorted(((code, names.get(code, code)) for code in settings.SHOP_SHIPPING_COUNTRIES), key=lambda c: c[1])
