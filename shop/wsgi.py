"""WSGI entry point, for HTTP-only servers; daphne serves `shop.asgi` for HTTP and WebSocket."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = get_wsgi_application()
