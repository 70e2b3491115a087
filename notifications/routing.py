from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from notifications.consumers import NotificationConsumer
from notifications.socket_logs import SocketLog

websocket_urlpatterns = [
    path("ws/notifications/", SocketLog(NotificationConsumer.as_asgi())),
    # Any other path (a typo, a NUL) is refused with 403; unrouted, Channels raised and daphne logged a traceback.
    re_path(r"", WebsocketDenier.as_asgi()),
]
