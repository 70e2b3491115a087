"""The countries checkout offers: ISO 3166-1 alpha-2 codes from SHOP_SHIPPING_COUNTRIES, named by CLDR."""

import pytest
from django.utils import translation

from accounts.countries import country_codes_check, country_name, shipping_country_choices


def test_codes_are_upper_cased_and_kept_in_order():
    assert country_codes_check(["de", " fr ", "AT"]) == ["DE", "FR", "AT"]


@pytest.mark.parametrize("codes", [["DEU"], ["D"], ["12"], ["XY"], [""], []])
def test_anything_but_a_known_two_letter_code_is_refused(codes):
    with pytest.raises(ValueError, match="SHOP_SHIPPING_COUNTRIES"):
        country_codes_check(codes)


def test_the_choices_are_the_configured_countries_by_name_in_the_active_language(settings):
    settings.SHOP_SHIPPING_COUNTRIES = ["DE", "AT", "FR"]
    assert shipping_country_choices() == [("AT", "Austria"), ("FR", "France"), ("DE", "Germany")]
    with translation.override("de"):
        assert shipping_country_choices() == [("DE", "Deutschland"), ("FR", "Frankreich"), ("AT", "Österreich")]
        assert country_name("CH") == "Schweiz"
