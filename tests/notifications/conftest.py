"""The notifications tests' fixtures: a redis-server of a test's own, and listeners on real groups."""

import asyncio
import threading

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from notifications.vapid import vapid_keys_generate
from shop.channel_layers import channel_layers_config
from tests.redis_server import RedisServer

PUSH_CONTACT = "mailto:ops@example.com"


@pytest.fixture
def private_redis(tmp_path, settings):
    """A redis-server of the test's own for the channel layer: it can be stopped, and every connection is ours."""
    server = RedisServer(tmp_path).start()
    settings.CHANNEL_LAYERS = channel_layers_config(server.url, settings.CHANNEL_LAYER_BACKEND, prefix="private")
    yield server
    server.stop()


class GroupListener:
    """A real channel on the real layer, subscribed to a group, to see what was published.

    It lives on an event loop that runs in a thread of its own for the whole test, as a web
    process's sockets do (a pub/sub subscription belongs to the loop that made it), and one
    receive runs all along, feeding a local queue: on the pub/sub layer a receive that times
    out gives up the channel's subscription.
    """

    def __init__(self, group: str, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.layer = get_channel_layer()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.channel = self._run(self.layer.new_channel())
        self._run(self.layer.group_add(group, self.channel))
        self.pump = self._run(self._start_pump())

    def _run(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start_pump(self) -> asyncio.Task:
        return asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            await self.messages.put(await self.layer.receive(self.channel))

    def receive(self, timeout=5):
        return self._run(asyncio.wait_for(self.messages.get(), timeout), timeout + 5)

    def receive_nothing(self, timeout=0.3):
        try:
            self.receive(timeout=timeout)
        except TimeoutError:
            return True
        return False


async def _stop_pumps(listeners: list[GroupListener]) -> None:
    for listener in listeners:
        listener.pump.cancel()
    await asyncio.gather(*(listener.pump for listener in listeners), return_exceptions=True)


@pytest.fixture
def listen():
    """`listen(group)`: a GroupListener on this test's listening loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listeners: list[GroupListener] = []

    def listen(group: str) -> GroupListener:
        listeners.append(GroupListener(group, loop))
        return listeners[-1]

    yield listen
    asyncio.run_coroutine_threadsafe(_stop_pumps(listeners), loop).result(10)
    loop_in_thread_close(loop, thread)


def loop_in_thread_close(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop an event loop running in a thread of its own, and close it.

    The channel layer hooks `close` to drop what it holds on that loop: its connections, and on the
    pub/sub layer its subscriptions.
    """
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


async def group_members(group: str) -> set[str]:
    """The channels in `group`, where the layer in use keeps them.

    The pub/sub layer (the default) keeps membership in this process's memory, per event loop
    (`RedisPubSubLoopLayer.groups`, keyed by the group's Redis channel): a channel left there
    keeps the process subscribed to the group for good. The core layer keeps a sorted set in Redis.
    """
    layer = get_channel_layer()
    if isinstance(layer, RedisPubSubChannelLayer):
        loop_layer = layer._get_layer()
        return set(loop_layer.groups.get(loop_layer._get_group_channel_name(group), ()))
    if isinstance(layer, RedisChannelLayer):
        members = await layer.connection(layer.consistent_hash(group)).zrange(layer._group_key(group), 0, -1)
        return {member.decode() for member in members}
    return set(layer.groups.get(group, ()))  # the in-memory layer of embedded mode


@pytest.fixture
def push_keys(settings):
    """The shop's VAPID keys: browser push on."""
    keys = vapid_keys_generate()
    settings.WEBPUSH_VAPID_PRIVATE_KEY = keys.private_key
    settings.WEBPUSH_VAPID_PUBLIC_KEY = keys.public_key
    settings.WEBPUSH_CONTACT = PUSH_CONTACT
    return keys
