"""The protocol router: Django for HTTP, the notification consumer for WebSocket."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
# Set up Django before importing anything that touches models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

# A web process holds thousands of long-lived sockets, a couple of hundred tracked objects each. With
# CPython's default thresholds a connect storm set off a full collection every time the heap grew by a
# quarter, each one a stop-the-world pass over every object: 21 of them, up to 2 s each, for 10,000 sockets
# (docs/performance.md). The defaults here consider a full collection only every 20,000 x 5 x 100 = 10
# million net allocations, so it becomes rare, while a young pass stays small (at most ~100,000 objects,
# ~50-100 ms; 50,000 x 20 let the middle generation grow to a million and pause 0.5 s). What start-up made
# (Django, URLconf, models) lives as long as the process: frozen out of every collection.
gc.set_threshold(*settings.WEB_GC_THRESHOLDS)
gc.collect()  # so no start-up garbage is frozen with the rest
gc.freeze()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from notifications.middleware import ConnectGate  # noqa: E402
from notifications.origin import SiteOriginValidator  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402
from shop.proxy import TrustedProxyMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check first (cross-site WebSocket hijacking: scheme, host and port), then the line of handshakes
        # (a reconnect storm is served first come first served), then the session's user.
        "websocket": SiteOriginValidator(
            ConnectGate(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
# Outermost, for HTTP and WebSocket alike: everything inside sees the real client and scheme (http/https,
# ws/wss), and no forwarded header a client wrote (only TRUSTED_PROXIES may set them; shop/proxy.py).
application = TrustedProxyMiddleware(application, trusted_proxies=settings.TRUSTED_PROXIES)
