"""The end-to-end tests log in to the servers: their users need the servers' password hash."""

import pytest


@pytest.fixture
def customer(live_customer):
    return live_customer


@pytest.fixture
def staff(live_staff):
    return live_staff
