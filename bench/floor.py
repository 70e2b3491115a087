"""The web process with its layers taken away, to measure what each one costs a socket.

`make bench` serves each application here in turn, then the shop's own, and storms them with
the same logged-in clients (bench/run.py, "the ladder"):

- `bare`: an ASGI application that accepts and says hello. What daphne itself costs
  (twisted, autobahn, the upgrade, the scope): the floor under any application.
- `consumer`: a Channels consumer that accepts and says hello. It subscribes a channel of its
  own on the channel layer, as every Channels consumer does, so group sends can reach it.
- `auth`: the same consumer behind Channels' `AuthMiddlewareStack`: Django's session and user
  lookups, as the shop does them. The hello carries the user's id.

The shop's application (`shop.asgi:application`) adds the origin check, the line of handshakes,
the groups and the resume. HTTP goes to the shop's Django application everywhere, so the bench
starts and checks these servers as it does the shop's.
"""

import json

# Django set up, and the web process's garbage-collector settings, exactly as in the shop.
from shop.asgi import django_asgi_app

# isort: split

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from notifications.consumers import DirectDispatchMixin
from notifications.frames import hello_frame
from notifications.selectors import NO_UNREAD


def _hello(user_id: int | None) -> str:
    return json.dumps(hello_frame(user_id=user_id, last_seq=0, unread=NO_UNREAD))


async def bare(scope, receive, send):
    if scope["type"] != "websocket":
        return await django_asgi_app(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": _hello(None)})
        elif message["type"] == "websocket.disconnect":
            return


class HelloConsumer(DirectDispatchMixin, AsyncWebsocketConsumer):
    """Dispatched as the shop's consumer is: without Channels' hop to its sync thread per message."""

    async def connect(self):
        user = self.scope.get("user")
        await self.accept()
        await self.send(text_data=_hello(user.pk if user is not None and user.is_authenticated else None))


_routes = URLRouter([path("ws/notifications/", HelloConsumer.as_asgi())])
consumer = ProtocolTypeRouter({"http": django_asgi_app, "websocket": _routes})
auth = ProtocolTypeRouter({"http": django_asgi_app, "websocket": AuthMiddlewareStack(_routes)})
