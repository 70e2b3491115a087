"""Losing Redis under an open socket closes it with a code the page retries, never a 1011."""

import pytest
from asgiref.sync import sync_to_async

from tests.factories import UserFactory
from tests.notifications.test_consumer import closed_with, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_redis_going_away_closes_open_sockets_with_4012(private_redis):
    communicator, _ = await open_socket(await sync_to_async(UserFactory)())

    await sync_to_async(private_redis.stop)()

    assert await closed_with(communicator, timeout=10) == 4012


async def test_connecting_while_redis_is_down_is_accepted_then_closed_with_4013(private_redis):
    from tests.notifications.test_consumer import session_key_for, socket

    session_key = await sync_to_async(session_key_for)(await sync_to_async(UserFactory)())
    await sync_to_async(private_redis.stop)()

    communicator = socket(session_key)
    connected, _ = await communicator.connect(timeout=10)

    assert connected
    assert await closed_with(communicator, timeout=10) == 4013
