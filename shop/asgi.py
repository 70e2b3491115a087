"""The protocol router: Django for HTTP, the notification consumer for WebSocket."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
# Set up Django before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from notifications.middleware import ConnectGate  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check first (cross-site WebSocket hijacking), then the line of handshakes
        # (a reconnect storm is served first come first served), then the session's user.
        "websocket": AllowedHostsOriginValidator(
            ConnectGate(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
