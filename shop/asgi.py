"""The protocol router: Django for HTTP, the notification consumer for WebSocket."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
# Set up Django before importing anything that touches models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

# Full collections rare (WEB_GC_THRESHOLDS) and start-up's objects (Django, URLconf, models) frozen out of them:
# stop-the-world passes over every socket's objects were the tail latency at 10,000 sockets (docs/performance.md,
# "Tail latency: the garbage collector, then daphne's sweeps").
gc.set_threshold(*settings.WEB_GC_THRESHOLDS)
gc.collect()  # so no start-up garbage is frozen with the rest
gc.freeze()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from notifications.middleware import ConnectGate, SocketAuth, SocketMetrics  # noqa: E402
from notifications.origin import SiteOriginValidator  # noqa: E402
from notifications.routing import websocket_urlpatterns  # noqa: E402
from shop.proxy import TrustedProxyMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Counted first (every handshake and close, notifications/metrics.py), then the origin check (cross-site
        # WebSocket hijacking: scheme, host and port), then the line of handshakes (a reconnect storm is served
        # first come first served), then the session's user, or the connect ticket that spares its lookup.
        "websocket": SocketMetrics(SiteOriginValidator(ConnectGate(SocketAuth(URLRouter(websocket_urlpatterns))))),
    }
)
# Outermost, for HTTP and WebSocket alike: everything inside sees the real client and scheme (http/https,
# ws/wss), and no forwarded header a client wrote (only TRUSTED_PROXIES may set them; shop/proxy.py).
application = TrustedProxyMiddleware(application, trusted_proxies=settings.TRUSTED_PROXIES)
