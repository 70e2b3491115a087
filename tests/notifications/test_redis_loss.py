"""Losing Redis under an open socket closes it with a code the page retries, never a 1011."""

import pytest
from asgiref.sync import sync_to_async

from tests.notifications.test_consumer import closed_with, open_socket
from tests.factories import UserFactory
from tests.redis_server import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_redis(tmp_path, settings):
    server = RedisServer(tmp_path).start()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": server.url, "socket_timeout": None, "socket_connect_timeout": 1}]},
        }
    }
    yield server
    server.stop()


async def test_redis_going_away_closes_open_sockets_with_1012(private_redis):
    communicator, _ = await open_socket(await sync_to_async(UserFactory)())

    await sync_to_async(private_redis.stop)()

    assert await closed_with(communicator, timeout=10) == 1012
