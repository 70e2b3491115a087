"""The carriers a shipped order can be tracked with, and the one check of what staff enter for it.

One table: each carrier's label, the form of its tracking numbers and the https page that tracks one. The link is
always built here from the number, never taken from a form or a client.
"""

import re
from dataclasses import dataclass
from urllib.parse import quote

# What a stored number may hold (Order.tracking_number, OrderEvent.tracking_number); every carrier's are shorter.
TRACKING_NUMBER_MAX_LENGTH = 40


@dataclass(frozen=True)
class Carrier:
    code: str
    label: str
    # The whole number must match (upper-case ASCII letters and digits only: see tracking_validate).
    number_pattern: str
    # The same rule in words, for the form error staff read.
    number_hint: str
    # An https page of the carrier's with "{number}" where the URL-quoted number goes.
    url_template: str

    def number_matches(self, number: str) -> bool:
        return re.fullmatch(self.number_pattern, number, flags=re.ASCII) is not None

    def tracking_url(self, number: str) -> str:
        return self.url_template.format(number=quote(number, safe=""))


# UPU S10 numbers (two letters, nine digits, the country's code) go through the national post of that country.
def _s10(country: str) -> str:
    return f"[A-Z]{{2}}[0-9]{{9}}{country}"


CARRIERS: dict[str, Carrier] = {
    carrier.code: carrier
    for carrier in (
        Carrier(
            code="dhl",
            label="DHL",
            number_pattern=rf"[0-9]{{10,20}}|JJD[0-9]{{10,30}}|{_s10('DE')}",
            number_hint="10 to 20 digits, JJD and digits, or two letters, nine digits and DE",
            url_template="https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id={number}",
        ),
        Carrier(
            code="ups",
            label="UPS",
            number_pattern=r"1Z[0-9A-Z]{16}",
            number_hint="1Z and 16 letters or digits",
            url_template="https://www.ups.com/track?tracknum={number}",
        ),
        Carrier(
            code="fedex",
            label="FedEx",
            number_pattern=r"[0-9]{12}|[0-9]{15}|[0-9]{20}|[0-9]{22}",
            number_hint="12, 15, 20 or 22 digits",
            url_template="https://www.fedex.com/fedextrack/?trknbr={number}",
        ),
        Carrier(
            code="dpd",
            label="DPD",
            number_pattern=r"[0-9]{14}",
            number_hint="14 digits",
            url_template="https://tracking.dpd.de/status/en_US/parcel/{number}",
        ),
        Carrier(
            code="postnl",
            label="PostNL",
            number_pattern=rf"3S[0-9A-Z]{{9,13}}|{_s10('NL')}",
            number_hint="3S and 9 to 13 letters or digits, or two letters, nine digits and NL",
            url_template="https://postnl.nl/tracktrace/?B={number}",
        ),
        Carrier(
            code="usps",
            label="USPS",
            number_pattern=rf"[0-9]{{20,22}}|{_s10('US')}",
            number_hint="20 to 22 digits, or two letters, nine digits and US",
            url_template="https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
        ),
        Carrier(
            code="royal_mail",
            label="Royal Mail",
            number_pattern=_s10("GB"),
            number_hint="two letters, nine digits and GB",
            url_template="https://www.royalmail.com/track-your-item#/tracking-results/{number}",
        ),
        Carrier(
            code="colissimo",
            label="La Poste / Colissimo",
            number_pattern=rf"[0-9][A-Z][0-9]{{11}}|{_s10('FR')}",
            number_hint="a digit, a letter and 11 digits, or two letters, nine digits and FR",
            url_template="https://www.laposte.fr/outils/suivre-vos-envois?code={number}",
        ),
    )
}


def carrier_choices() -> list[tuple[str, str]]:
    """(code, label) of every carrier, for the admin's selects."""
    return [(carrier.code, carrier.label) for carrier in CARRIERS.values()]


@dataclass(frozen=True)
class Tracking:
    """A shipment's carrier and tracking number, and the carrier's page for it."""

    carrier: Carrier
    number: str

    @property
    def url(self) -> str:
        return self.carrier.tracking_url(self.number)

    def payload(self) -> dict:
        """What a notification carries of it (orders/notifications.py; email and push render this)."""
        return {"carrier": self.carrier.label, "number": self.number, "url": self.url}


class TrackingInvalid(Exception):
    """Tracking input refused; the message is fit to show to staff and `field` names the input at fault."""

    def __init__(self, message: str, *, field: str):
        self.field = field  # "carrier" or "tracking_number"
        super().__init__(message)


def tracking_validate(*, carrier: str, number: str) -> Tracking | None:
    """Staff's carrier code and tracking number as a `Tracking`, None when both are empty; else `TrackingInvalid`.

    The number is taken as staff paste it from a label: spaces dropped and letters upper-cased (ASCII only, so no
    other character can turn into an allowed one).
    """
    number = "".join(number.split())
    if not carrier and not number:
        return None
    if not carrier:
        raise TrackingInvalid("Choose the carrier of this tracking number.", field="carrier")
    if carrier not in CARRIERS:
        raise TrackingInvalid("Choose one of the carriers listed.", field="carrier")
    chosen = CARRIERS[carrier]
    if not number:
        raise TrackingInvalid(f"Enter the tracking number {chosen.label} gave you.", field="tracking_number")
    if len(number) > TRACKING_NUMBER_MAX_LENGTH:
        raise TrackingInvalid(
            f"A tracking number has at most {TRACKING_NUMBER_MAX_LENGTH} characters.", field="tracking_number"
        )
    number = number.upper() if number.isascii() else number
    if not chosen.number_matches(number):
        raise TrackingInvalid(
            f"That is not a {chosen.label} tracking number ({chosen.number_hint}).", field="tracking_number"
        )
    return Tracking(carrier=chosen, number=number)


def tracking_of(*, carrier: str, number: str) -> Tracking | None:
    """The stored tracking of an order or event; None without one (or if its carrier left the table)."""
    if not number or carrier not in CARRIERS:
        return None
    return Tracking(carrier=CARRIERS[carrier], number=number)
