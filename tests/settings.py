"""Test settings: the real settings, plus what only tests want.

Databases and Redis come from the environment exactly as in production
(`make test` and `.ci/run` point them at the real PostgreSQL and Redis).
"""

import os
import tempfile
from pathlib import Path

# Production settings refuse to start without these; tests run with DEBUG off like production.
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret-" + "0123456789abcdefghijklmnopqrstuvwxyz")

from shop.settings import *  # noqa: F403
from shop.settings import CHANNEL_LAYERS, REDIS_URL, STORAGES

# Fast hashing: tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests run tasks inline; end-to-end tests start a real worker with shop.settings.
CELERY_TASK_ALWAYS_EAGER = True
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
# Uploads a test makes (product images) go to a folder of this run, never into the checkout's media/.
MEDIA_ROOT = Path(tempfile.gettempdir()) / f"shop-test-media-{os.getpid()}"

if REDIS_URL:
    # Keep test traffic apart from a shop running against the same Redis.
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"test-{os.getpid()}"
    # The login limits' counts too; the live servers get the same prefix (CHANNEL_LAYER_PREFIX) and share them.
    LOGIN_LIMIT_KEY_PREFIX = f"test-{os.getpid()}-login"

# Tests drive order progress themselves; the demo simulation is tested on its own.
SIMULATE_ORDER_PROGRESS = False

# Django's test client and the WebSocket communicator present themselves as "testserver".
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

# The test client speaks plain HTTP.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0

# The push tests run a push service of their own on 127.0.0.1, over plain HTTP.
WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS = True
