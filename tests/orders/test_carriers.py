"""The carriers' table and the one check of what staff enter as a shipment's tracking (orders/carriers.py)."""

from urllib.parse import urlsplit

import pytest

from orders.carriers import (
    CARRIERS,
    TRACKING_NUMBER_MAX_LENGTH,
    Tracking,
    TrackingInvalid,
    carrier_choices,
    tracking_of,
    tracking_validate,
)

# Every carrier: numbers of the forms it issues, and numbers close to them that it does not.
NUMBERS = {
    "dhl": (
        ["00340434161094042557", "1234567890", "JJD0001234567890", "RR123456785DE"],
        ["123456789", "123456789012345678901", "JJD12", "RR123456785GB", "00340434-161094042557"],
    ),
    "ups": (
        ["1Z999AA10123456784", "1ZA1B2C3D4E5F6G7H8"],
        ["1Z999AA1012345678", "2Z999AA10123456784", "1Z999AA101234567845", "1Z999AA1012345678_"],
    ),
    "fedex": (
        ["123456789012", "123456789012345", "12345678901234567890", "1234567890123456789012"],
        ["12345678901", "1234567890123", "12345678901A", "123456789012345678901"],
    ),
    "dpd": (["01234567890123"], ["0123456789012", "012345678901234", "0123456789012A"]),
    "postnl": (
        ["3SABCD123456789", "3S123456789", "RR123456785NL"],
        ["3S12345", "3SABCD12345678901", "4SABCD123456789", "RR123456785DE"],
    ),
    "usps": (
        ["9400100000000000000000", "94001000000000000000", "EC123456785US"],
        ["940010000000000000", "94001000000000000000000", "EC123456785GB"],
    ),
    "royal_mail": (["AB123456789GB"], ["AB12345678GB", "AB123456789US", "A1123456789GB", "AB1234567890GB"]),
    "colissimo": (
        ["6A12345678901", "CP123456785FR"],
        ["6A1234567890", "AA12345678901", "6A123456789012", "CP123456785GB"],
    ),
}
GOOD = [(carrier, number) for carrier, (good, _) in NUMBERS.items() for number in good]
BAD = [(carrier, number) for carrier, (_, bad) in NUMBERS.items() for number in bad]


def test_the_table_names_every_carrier_once_with_an_https_page():
    assert set(NUMBERS) == set(CARRIERS)
    assert [code for code, _ in carrier_choices()] == list(CARRIERS)
    for code, carrier in CARRIERS.items():
        assert carrier.code == code and carrier.label and carrier.number_hint
        assert "{number}" in carrier.url_template


@pytest.mark.parametrize(("carrier", "number"), GOOD)
def test_a_number_of_the_carriers_form_is_taken_with_the_link_to_its_page(carrier, number):
    tracking = tracking_validate(carrier=carrier, number=number)

    assert tracking == Tracking(carrier=CARRIERS[carrier], number=number)
    url = urlsplit(tracking.url)
    assert url.scheme == "https" and url.netloc
    assert number in tracking.url
    assert tracking.payload() == {"carrier": CARRIERS[carrier].label, "number": number, "url": tracking.url}


@pytest.mark.parametrize(("carrier", "number"), BAD)
def test_a_number_the_carrier_does_not_issue_is_refused_with_its_form_in_words(carrier, number):
    with pytest.raises(TrackingInvalid) as refused:
        tracking_validate(carrier=carrier, number=number)

    assert refused.value.field == "tracking_number"
    label, hint = CARRIERS[carrier].label, CARRIERS[carrier].number_hint
    assert str(refused.value) == f"That is not a {label} tracking number ({hint})."


@pytest.mark.parametrize("carrier", list(CARRIERS))
@pytest.mark.parametrize("markup", ["<", ">", '"', "&", "'", "/", "?", "#", "%", "\x00", "\u202e"])
def test_markup_and_url_characters_in_a_number_are_refused_by_every_carrier(carrier, markup):
    good = NUMBERS[carrier][0][0]
    number = good[:4] + markup + good[4:]

    with pytest.raises(TrackingInvalid) as refused:
        tracking_validate(carrier=carrier, number=number)

    assert refused.value.field == "tracking_number"


def test_a_number_as_pasted_from_a_label_is_taken_without_spaces_and_in_capitals():
    tracking = tracking_validate(carrier="ups", number="  1z 999 aa1 0123 4567 84\t")

    assert tracking.number == "1Z999AA10123456784"
    assert tracking.url == "https://www.ups.com/track?tracknum=1Z999AA10123456784"


@pytest.mark.parametrize("number", ["１Z999AA10123456784", "1Z999AA1012345678ß", "1Z999AA1012345678ı"])
def test_characters_that_would_capitalise_into_allowed_ones_are_refused(number):
    with pytest.raises(TrackingInvalid):
        tracking_validate(carrier="ups", number=number)


def test_the_link_quotes_the_number_whatever_it_holds():
    assert (
        CARRIERS["dpd"].tracking_url("A/B?C=D#E F")
        == "https://tracking.dpd.de/status/en_US/parcel/A%2FB%3FC%3DD%23E%20F"
    )


@pytest.mark.parametrize(
    ("carrier", "number", "field", "message"),
    [
        ("", "00340434161094042557", "carrier", "Choose the carrier of this tracking number."),
        ("hermes", "00340434161094042557", "carrier", "Choose one of the carriers listed."),
        ("DHL", "00340434161094042557", "carrier", "Choose one of the carriers listed."),
        ("dhl", "", "tracking_number", "Enter the tracking number DHL gave you."),
        ("dhl", "   ", "tracking_number", "Enter the tracking number DHL gave you."),
        (
            "dhl",
            "1" * (TRACKING_NUMBER_MAX_LENGTH + 1),
            "tracking_number",
            f"A tracking number has at most {TRACKING_NUMBER_MAX_LENGTH} characters.",
        ),
    ],
    ids=[
        "number-without-carrier",
        "unknown-carrier",
        "carrier-label-not-code",
        "carrier-without-number",
        "carrier-with-blank-number",
        "too-long",
    ],  # fmt: skip
)
def test_incomplete_or_unknown_input_is_refused_naming_the_field_at_fault(carrier, number, field, message):
    with pytest.raises(TrackingInvalid) as refused:
        tracking_validate(carrier=carrier, number=number)

    assert (refused.value.field, str(refused.value)) == (field, message)


def test_no_carrier_and_no_number_is_no_tracking():
    assert tracking_validate(carrier="", number=" ") is None


def test_stored_tracking_is_read_back_and_a_carrier_no_longer_listed_is_none():
    assert tracking_of(carrier="dpd", number="01234567890123") == Tracking(CARRIERS["dpd"], "01234567890123")
    assert tracking_of(carrier="", number="") is None
    assert tracking_of(carrier="gone", number="01234567890123") is None
