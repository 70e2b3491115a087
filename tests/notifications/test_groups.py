"""Which groups a socket joins: its user's, and every audience an app registered that the server-side user is in."""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from notifications.groups import STAFF_GROUP, audience_register, user_group, user_groups
from orders.notifications import staff_member
from tests.factories import StaffFactory, UserFactory
from tests.notifications.test_consumer import make_user, open_socket

VIP_AUDIENCE = "tests.vip"


def vip(user) -> bool:
    """A test app's audience: the users it calls VIPs."""
    return user.first_name == "VIP"


audience_register(VIP_AUDIENCE, vip)  # as the test app's AppConfig.ready() would


@pytest.mark.django_db
def test_the_orders_app_registers_the_staff_audience_at_start_up():
    staff, customer = StaffFactory(), UserFactory()

    assert STAFF_GROUP in user_groups(staff)
    assert user_groups(customer) == [user_group(customer.pk)]


def test_registering_an_audience_again_is_harmless_and_another_rule_under_its_name_is_refused():
    audience_register(STAFF_GROUP, staff_member)

    with pytest.raises(ValueError, match="'staff' is already registered"):
        audience_register(STAFF_GROUP, vip)


@pytest.mark.parametrize("name", ["", "user_7", "two words", "x" * 100, "staff!"])
def test_an_audience_whose_name_is_no_group_name_or_a_users_is_refused(name):
    with pytest.raises(ValueError, match="An audience's name"):
        audience_register(name, vip)


@pytest.mark.django_db(transaction=True)
async def test_a_socket_joins_every_audience_its_server_side_user_belongs_to_and_no_other():
    member = await sync_to_async(UserFactory)(first_name="VIP")
    bystander = await make_user()
    member_socket, _ = await open_socket(member)
    bystander_socket, _ = await open_socket(bystander)

    await get_channel_layer().group_send(
        VIP_AUDIENCE, {"type": "frame.forward", "frame": {"type": "vip_news", "title": "Early access"}}
    )

    assert await member_socket.receive_json_from(timeout=5) == {"type": "vip_news", "title": "Early access"}
    assert await bystander_socket.receive_nothing(timeout=0.5)
    for socket in (member_socket, bystander_socket):
        await socket.disconnect()
