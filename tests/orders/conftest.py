import pytest

from orders.carriers import CARRIERS, Carrier
from tests.notifications.conftest import listen  # noqa: F401 (the fixture: real groups on the real layer)

# A carrier whose label is markup: what a page shows of it must be text.
MARKUP_CARRIER = Carrier(
    code="probe",
    label='<img src=x onerror=alert(1)> Post & "Co"',
    number_pattern=r"PROBE[0-9]",
    number_hint="PROBE and a digit",
    url_template="https://probe.example/track/{number}",
)


@pytest.fixture
def markup_carrier(monkeypatch) -> Carrier:
    """MARKUP_CARRIER in the carriers' table for one test."""
    monkeypatch.setitem(CARRIERS, MARKUP_CARRIER.code, MARKUP_CARRIER)
    return MARKUP_CARRIER
