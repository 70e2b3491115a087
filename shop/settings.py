"""Settings for the shop, read from the environment (twelve-factor).

Every variable is listed in the README's configuration table. With no Redis (no `REDIS_URL`, no `REDIS_SENTINELS`)
the shop runs in embedded mode: an in-memory channel layer and Celery tasks run
eagerly in-process, so `make run` needs nothing but Python.
"""

import logging
from datetime import timedelta
from pathlib import Path

import environ
import limits
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from accounts.countries import DEFAULT_SHIPPING_COUNTRIES, country_codes_check
from notifications.vapid import vapid_settings_check
from shop.celery_broker import celery_broker_settings
from shop.channel_layers import channel_layers_config
from shop.logs import LOG_FORMATS, logging_config, structlog_configure
from shop.money import currency_code_check
from shop.proxy import proxy_networks_parse
from shop.redis_config import limits_storage, redis_from_env

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for development; real deployments set the environment.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key only when DEBUG is on: production refuses to start without a real one.
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if not DEBUG:
    # Refuse to start rather than run a production site that is guessable or open to Host spoofing.
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("SECRET_KEY must be a real secret: at least 50 random characters.")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's host names when DEBUG is off.")

# --- HTTPS (production sits behind a TLS-terminating proxy) ---------------------------------

HTTPS = env.bool("HTTPS", default=not DEBUG)
# The proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses or CIDR blocks; none by
# default). shop/proxy.py sets the request's client and scheme from them and drops them from anyone else, so
# Django reads the scheme from the ASGI scope: no SECURE_PROXY_SSL_HEADER, which would believe any client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    proxy_networks_parse(entries=TRUSTED_PROXIES)
except ValueError as error:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES must be IP addresses or CIDR blocks: {error}") from None
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Pages read the token from their forms (static/js/pages/ too): no script needs the cookie.
CSRF_COOKIE_HTTPONLY = True
# Scripts, styles and connections from the shop's own origin only: an injected <script>, inline handler or
# style attribute does not run, and no script on a page can open a socket or send a request elsewhere
# ('self' covers ws:/wss: to the same host in CSP Level 3 browsers). The admin and static/js/ need nothing inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Browser features no page of the shop uses, switched off for every page (and anything injected into one).
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "magnetometer", "microphone",
        "midi", "payment", "usb", "serial", "hid", "bluetooth", "browsing-topics",
    )
}  # fmt: skip

INSTALLED_APPS = [
    # daphne first so that `runserver` serves ASGI (HTTP and WebSocket).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "django_structlog",
    "accounts",
    "shop",
    "orders",
    "notifications",
    "support",
]

MIDDLEWARE = [
    # First: probes and scrapes come by address over plain HTTP, before Host validation and the HTTPS redirect.
    "shop.health.OperationsEndpoints",
    # First, before anything reads the headers: every response, even a redirect or a 400, names its request id.
    "shop.request_logs.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so static files (an SVG is a document too) carry the policies as well.
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # Before anything reads the request: a NUL in a URL or form is a 400, never a database error (500).
    "shop.middleware.RefuseUnstorableInput",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Once the user is known: every line of the request carries its id and the user's (shop/logs.py).
    "shop.request_logs.RequestMiddleware",
    # A password change keeps the sockets of the session that made it (accounts/signals.py).
    "accounts.middleware.current_request_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart",
                "notifications.context_processors.live",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Under ASGI per-thread persistent connections pile up: 0 plus a process-wide pool, as Django documents
# (docs/performance.md, appendix A: without the pool a connect storm ran PostgreSQL out of connections).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_MAX_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        # A request waits this long for a free connection, then fails cleanly.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        # With CONN_HEALTH_CHECKS a connection broken by a PostgreSQL restart is replaced, never handed out.
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses any login attempt while its username and address are locked out.
    "axes.backends.AxesStandaloneBackend",
    # Then: refuses any login over the per-username or per-address limit (accounts/login_limits.py).
    "accounts.login_limits.LoginLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Password guessing: after LOGIN_FAILURE_LIMIT failures for one username from one
# address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (HTTP 429). Keyed on the
# pair so an attacker cannot lock a customer out from elsewhere.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The 429 page, worded for whichever limit refused the login.
AXES_LOCKOUT_CALLABLE = "accounts.login_limits.lockout_response"
# Beyond that pair, failed logins within a moving window (the `limits` notation) for one username from any
# address, and from one address for any usernames (password spraying); over either, logins are refused.
# The username bound is above what one address can reach before axes locks it (5 per 15 minutes, so 20 an
# hour): pausing a customer's logins takes several addresses (accounts/login_limits.py, docs/reliability.md).
LOGIN_USERNAME_FAILURE_LIMIT = env.str("LOGIN_USERNAME_FAILURE_LIMIT", default="30/hour")
LOGIN_ADDRESS_FAILURE_LIMIT = env.str("LOGIN_ADDRESS_FAILURE_LIMIT", default="30/hour")
# Password-reset requests that send an email, per address asked for and per client address: beyond them the answer
# is the same and no email goes out, so nobody can flood a mailbox or the mail server (accounts/password_reset.py).
PASSWORD_RESET_EMAIL_LIMIT = env.str("PASSWORD_RESET_EMAIL_LIMIT", default="3/hour")
PASSWORD_RESET_ADDRESS_LIMIT = env.str("PASSWORD_RESET_ADDRESS_LIMIT", default="20/hour")
for _name, _limit in (("LOGIN_USERNAME_FAILURE_LIMIT", LOGIN_USERNAME_FAILURE_LIMIT),
                      ("LOGIN_ADDRESS_FAILURE_LIMIT", LOGIN_ADDRESS_FAILURE_LIMIT),
                      ("PASSWORD_RESET_EMAIL_LIMIT", PASSWORD_RESET_EMAIL_LIMIT),
                      ("PASSWORD_RESET_ADDRESS_LIMIT", PASSWORD_RESET_ADDRESS_LIMIT)):  # fmt: skip
    try:
        if len(limits.parse_many(_limit)) != 1:
            raise ValueError(_limit)
    except ValueError:
        raise ImproperlyConfigured(f'{_name} must be one limit in the `limits` notation, e.g. "30/hour".') from None
# The client address is REMOTE_ADDR: the peer's, or behind a proxy in TRUSTED_PROXIES the address that
# proxy saw (shop/proxy.py), never one the client wrote.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sessions in the database, but a database outage while saving one is a 500, not Django's 400
# "session deleted" (shop/sessions.py).
SESSION_ENGINE = "shop.sessions"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

LANGUAGE_CODE = "en-us"
# Every price is in this one currency (ISO 4217), written for the active language by shop/money.py.
try:
    SHOP_CURRENCY = currency_code_check(env.str("SHOP_CURRENCY", default="EUR"))
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
# Where checkout's country list offers delivery (ISO 3166-1 alpha-2 codes, named by accounts/countries.py).
try:
    SHOP_SHIPPING_COUNTRIES = country_codes_check(
        env.list("SHOP_SHIPPING_COUNTRIES", default=DEFAULT_SHIPPING_COUNTRIES)
    )
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploads (product images): on this disk, shared by every web process of a host (compose: the `media` volume).
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
# Whether the shop serves MEDIA_URL itself: yes alone, no behind deploy/nginx.conf, which serves it from the volume.
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)
PRODUCT_IMAGE_MAX_BYTES = env.int("PRODUCT_IMAGE_MAX_BYTES", default=2 * 1024 * 1024)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "shop.storage.StaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from the app folders in development, so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Redis (channel layer, Celery broker) and RabbitMQ (Celery broker, if chosen) ---------------

REDIS_URL = env.str("REDIS_URL", default="")
# Or a primary that Redis Sentinel names, so a failover moves every client to the promoted replica. REDIS is the
# one the shop uses ("" in embedded mode); shop/redis_config.py turns it into each client's configuration.
REDIS = redis_from_env(
    url=REDIS_URL,
    sentinels=env.str("REDIS_SENTINELS", default=""),
    master=env.str("REDIS_SENTINEL_MASTER", default=""),
    password=env.str("REDIS_PASSWORD", default=""),
    sentinel_password=env.str("REDIS_SENTINEL_PASSWORD", default=""),
    db=env.str("REDIS_DB", default=""),
)

# How long daphne keeps a WebSocket open (its --websocket_timeout); group
# membership must outlive it, or a long-lived socket silently stops receiving.
WEBSOCKET_LIFETIME = env.int("WEBSOCKET_LIFETIME", default=86400)
# How the web process listens and waits (shop/web.py hands them to daphne; every start command inherits them).
WEB_HOST = env.str("WEB_HOST", default="127.0.0.1")
WEB_PORT = env.int("WEB_PORT", default=8000)
# A storm's connections wait to be accepted, not dropped (twisted's default of 50; docs/performance.md, "What the
# profiles showed, and what was fixed"), and its handshakes wait in line, not refused (daphne's default of 5 s;
# docs/reliability.md, "Note on 7").
WEB_BACKLOG = env.int("WEB_BACKLOG", default=2048)
WEBSOCKET_CONNECT_TIMEOUT = env.int("WEBSOCKET_CONNECT_TIMEOUT", default=30)
# Seconds a client has to finish sending a request's headers (shop/web.py), so slow clients cannot hold
# half-open connections; a complete WebSocket handshake then waits in line under WEBSOCKET_CONNECT_TIMEOUT.
WEB_HEADER_TIMEOUT = env.float("WEB_HEADER_TIMEOUT", default=10.0)
# Seconds a web process has on SIGTERM to close its sockets (1012, spread over the first half) and finish its
# HTTP requests before it exits (shop/drain.py); every supervisor's stop timeout must exceed it (docs/reliability.md).
WEB_DRAIN_SECONDS = env.float("WEB_DRAIN_SECONDS", default=10.0)
# The web process's garbage-collector thresholds (shop/asgi.py; docs/performance.md, appendix A).
WEB_GC_THRESHOLDS = tuple(env.list("WEB_GC_THRESHOLDS", cast=int, default=[20_000, 5, 100]))


# "pubsub" (RedisPubSubChannelLayer, the default) or "core" (RedisChannelLayer):
# docs/performance.md compares the two and says why pub/sub is the default.
CHANNEL_LAYER_BACKEND = env.str("CHANNEL_LAYER_BACKEND", default="pubsub")
# The layer's shards, if it has several: Redis URLs it spreads groups over (docs/operations.md, "Sharding the channel
# layer"). Unset: REDIS_URL alone. The broker and the limits stay on REDIS_URL either way.
CHANNEL_LAYER_REDIS_URLS = env.list("CHANNEL_LAYER_REDIS_URLS", default=[])
CHANNEL_LAYERS = channel_layers_config(
    REDIS,
    CHANNEL_LAYER_BACKEND,
    prefix=env.str("CHANNEL_LAYER_PREFIX", default="shop"),
    group_expiry=WEBSOCKET_LIFETIME,
    shard_urls=CHANNEL_LAYER_REDIS_URLS,
)

# The login limits' counts: in Redis when there is one, so every process shares them, beside the layer's keys.
LOGIN_LIMIT_STORAGE, LOGIN_LIMIT_STORAGE_OPTIONS = limits_storage(REDIS)
LOGIN_LIMIT_KEY_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="shop") + "-login"

# Seconds between this process's checks that the layer's Redis (each shard) is up and the same one
# (see notifications/layer_watch.py): a restart or outage makes the sockets that hear through it reconnect.
CHANNEL_LAYER_WATCH_INTERVAL = env.float("CHANNEL_LAYER_WATCH_INTERVAL", default=1.0)

# The broker is the shop's Redis unless this names a RabbitMQ (amqp://); shop/celery_broker.py sets what each needs.
# A killed worker's late-acked task comes back: on RabbitMQ as soon as its connection drops, on Redis once it has been
# unacked for CELERY_VISIBILITY_TIMEOUT (docs/reliability.md, "Which broker"). The timeout must stay well before beat
# cancels the order as unpaid, and above the longest a live worker holds a task unacked (countdowns, retries), or it
# also runs twice (harmless: every task is idempotent, orders/tasks.py; docs/reliability.md, note on 4).
# Celery itself reads CELERY_BROKER_URL from the environment too, ahead of these settings: the same broker either way.
vars().update(
    celery_broker_settings(
        url=env.str("CELERY_BROKER_URL", default=""),
        redis=REDIS,
        visibility_timeout=env.int("CELERY_VISIBILITY_TIMEOUT", default=300),
    )
)
CELERY_TASK_ALWAYS_EAGER = not REDIS
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A late-acked task whose pool process died (SIGKILL, OOM) goes back on the queue for another try, as it does when
# the whole worker dies; Celery's default acks it, so it was lost (every task is idempotent, orders/tasks.py).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Separate queues let several shops (or test runs) share one broker.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="shop")

# --- Notifications ---------------------------------------------------------------

# Unpublished notifications older than this are re-published by the beat sweeper.
NOTIFICATION_REPUBLISH_AFTER = env.int("NOTIFICATION_REPUBLISH_AFTER", default=5)
# The offline fallback (notifications/offline.py): a notification no page acknowledged and nobody read is pushed
# after NOTIFICATION_PUSH_DELAY seconds and emailed after NOTIFICATION_EMAIL_DELAY.
NOTIFICATION_EMAIL_DELAY = env.float("NOTIFICATION_EMAIL_DELAY", default=120.0)
NOTIFICATION_PUSH_DELAY = env.float("NOTIFICATION_PUSH_DELAY", default=10.0)
# A run of the fallback (the beat task, or `manage.py notifications_deliver --loop` in embedded mode) every this
# many seconds; the rows it sends are its own for NOTIFICATION_DELIVERY_LEASE seconds, which must outlast the longest
# send (EMAIL_TIMEOUT for each of an SMTP session's ten or so exchanges): a run killed mid-send is taken over after it.
NOTIFICATION_DELIVERY_INTERVAL = env.float("NOTIFICATION_DELIVERY_INTERVAL", default=5.0)
NOTIFICATION_DELIVERY_LEASE = env.float("NOTIFICATION_DELIVERY_LEASE", default=120.0)
# Tries of one delivery (SMTP down or refusing) before it is `failed`; the wait before each retry doubles from this.
NOTIFICATION_DELIVERY_MAX_ATTEMPTS = env.int("NOTIFICATION_DELIVERY_MAX_ATTEMPTS", default=5)
NOTIFICATION_DELIVERY_RETRY_DELAY = env.float("NOTIFICATION_DELIVERY_RETRY_DELAY", default=60.0)
# Browser push (Web Push with VAPID, notifications/push.py): a key pair from `manage.py webpush_keys` and a way
# to reach the shop's operator (mailto: or https:), sent to the push services. Unset, push is off.
WEBPUSH_VAPID_PRIVATE_KEY = env.str("WEBPUSH_VAPID_PRIVATE_KEY", default="")
WEBPUSH_VAPID_PUBLIC_KEY = env.str("WEBPUSH_VAPID_PUBLIC_KEY", default="")
WEBPUSH_CONTACT = env.str("WEBPUSH_CONTACT", default="")
try:
    vapid_settings_check(
        private_key=WEBPUSH_VAPID_PRIVATE_KEY, public_key=WEBPUSH_VAPID_PUBLIC_KEY, contact=WEBPUSH_CONTACT
    )
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
# How long a push service keeps a message for a browser that is offline, and how long we wait for its answer.
WEBPUSH_TTL = env.int("WEBPUSH_TTL", default=24 * 3600)
WEBPUSH_TIMEOUT = env.float("WEBPUSH_TIMEOUT", default=10.0)
# Subscription endpoints are https: URLs of a push service; a plain-HTTP one on 127.0.0.1 (a test's own push
# service) is accepted only when this is on, as it is under DEBUG and in the tests.
WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS = env.bool("WEBPUSH_ALLOW_LOOPBACK_ENDPOINTS", default=DEBUG)
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=90)
# A client that missed more than this gets {"type": "reset"} and refetches the page.
NOTIFICATION_MAX_BACKLOG = env.int("NOTIFICATION_MAX_BACKLOG", default=500)
# A send still running after this many seconds (Redis unreachable but not refusing) is abandoned and left to
# the sweeper; a bulk send gets more per message (notifications/services.py).
NOTIFICATION_PUBLISH_TIMEOUT = env.float("NOTIFICATION_PUBLISH_TIMEOUT", default=5.0)
# Failed sends of one notification (its own fault, not the layer's) before the sweeper quarantines it.
NOTIFICATION_PUBLISH_MAX_ATTEMPTS = env.int("NOTIFICATION_PUBLISH_MAX_ATTEMPTS", default=5)
# Characters of one client message: room for a chat.send's 2,000-character body however its client escapes it
# (\uXXXX for each UTF-16 unit: 12 per emoji).
NOTIFICATION_SOCKET_MAX_MESSAGE_BYTES = 32 * 1024
NOTIFICATION_SOCKET_RATE_LIMIT = env.str("NOTIFICATION_SOCKET_RATE_LIMIT", default="10/second;120/minute")
NOTIFICATION_SOCKET_RATE_LIMIT_STRIKES = 20
# Per user, across every web process (notifications/user_limits.py): sockets open at once (a new one
# closes the oldest with 4409), and messages from all their sockets together.
NOTIFICATION_SOCKETS_PER_USER = env.int("NOTIFICATION_SOCKETS_PER_USER", default=20)
NOTIFICATION_USER_RATE_LIMIT = env.str("NOTIFICATION_USER_RATE_LIMIT", default="20/second;240/minute")
# Seconds between `unread` frames to one socket: a burst of mark-reads reaches it as the first frame at once,
# then the newest (with every seq marked meanwhile) once per interval.
NOTIFICATION_UNREAD_FRAME_INTERVAL = env.float("NOTIFICATION_UNREAD_FRAME_INTERVAL", default=0.5)
# WebSocket handshakes set up at once per process; the rest wait in line (notifications.middleware.ConnectGate).
NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT = env.int("NOTIFICATION_SOCKET_CONNECTS_IN_FLIGHT", default=32)
# Seconds a connect ticket is good for (notifications/tickets.py): the page's is used at once, and each `hello`
# and `pong` (every 25 s) brings a fresh one for the next reconnect; an older one falls back to the cookie alone.
NOTIFICATION_SOCKET_TICKET_MAX_AGE = env.int("NOTIFICATION_SOCKET_TICKET_MAX_AGE", default=60)

# --- Support conversations (support/, docs/protocol.md "Support conversations") --------------

# Messages one user may post, over all their sockets on every web process (on top of the socket's own limits).
CHAT_SEND_RATE_LIMIT = env.str("CHAT_SEND_RATE_LIMIT", default="5/5second;60/minute")
# Conversations one socket may watch at once (`chat.open`); a staff inbox closes one before opening another.
CHAT_CONVERSATIONS_PER_SOCKET = env.int("CHAT_CONVERSATIONS_PER_SOCKET", default=20)
# Messages `chat.open` replays at most: a page that missed more gets the newest this many, told it was truncated.
CHAT_MAX_BACKLOG = env.int("CHAT_MAX_BACKLOG", default=200)
# A staff reply the customer has not read this many seconds after it was posted becomes a `chat.message`
# notification (support/rules.py), looked for every CHAT_NOTIFY_INTERVAL seconds (beat's, or the web process's).
CHAT_NOTIFY_DELAY = env.float("CHAT_NOTIFY_DELAY", default=30.0)
CHAT_NOTIFY_INTERVAL = env.float("CHAT_NOTIFY_INTERVAL", default=5.0)
# Conversations the staff inbox lists at once (the head of the queue; it says how many there are in all).
CHAT_INBOX_MAX_ROWS = env.int("CHAT_INBOX_MAX_ROWS", default=100)
# Seconds a page shows "… is typing" after a `chat.typing` (the frame's `expires_in`), unless another one comes.
CHAT_TYPING_SECONDS = env.int("CHAT_TYPING_SECONDS", default=5)
# Seconds a web process's presence (its sockets online, its staff viewing) outlives it once it stops refreshing it
# (SIGKILL); refreshed, and re-read by watchers, three times as often (support/presence.py).
CHAT_PRESENCE_SECONDS = env.float("CHAT_PRESENCE_SECONDS", default=15.0)

# --- Health and metrics (shop/health.py, shop/monitoring.py; docs/operations.md) ---------------

# /readyz fails while more notifications than this wait past NOTIFICATION_REPUBLISH_AFTER (the sweeper is behind).
READYZ_MAX_UNPUBLISHED = env.int("READYZ_MAX_UNPUBLISHED", default=1000)
# Who may read /metrics (and a worker's metrics port): these addresses or CIDR blocks, or a bearer token.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
try:
    proxy_networks_parse(entries=METRICS_ALLOWED_NETWORKS)
except ValueError as error:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS must be IP addresses or CIDR blocks: {error}") from None
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A Celery worker serves its pool's metrics on this port (0: not at all) and address.
CELERY_METRICS_PORT = env.int("CELERY_METRICS_PORT", default=0)
CELERY_METRICS_HOST = env.str("CELERY_METRICS_HOST", default="127.0.0.1")

# --- Email ------------------------------------------------------------------------

# django-environ's format: smtp://user:pass@host:587, smtp+tls://…, smtp+ssl://…, consolemail://. Embedded mode prints
# emails on the console; a deployment (with Redis) defaults to a relay on this machine's port 25, Django's own
# default, so a forgotten EMAIL_URL shows as failed deliveries with their error rather than mail printed to a log.
_email = env.email_url("EMAIL_URL", default="smtp://localhost:25" if REDIS else "consolemail://")
vars().update({name: value for name, value in _email.items() if value is not None})
# Seconds each SMTP exchange may wait (Django's default is forever: a silent server would hold a worker).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Shop <shop@localhost>")
# Where links in emails point (the order page, unsubscribe): the address customers reach the shop at.
SITE_URL = env.str(
    "SITE_URL",
    default=f"{'https' if HTTPS else 'http'}://{(ALLOWED_HOSTS or ['localhost'])[0].lstrip('.')}"
    + (f":{WEB_PORT}" if DEBUG else ""),
).rstrip("/")

# --- Demo order simulation (Celery) ------------------------------------------------

# Simulated payment and fulfilment need a real worker; off in embedded mode by default.
SIMULATE_ORDER_PROGRESS = env.bool("SIMULATE_ORDER_PROGRESS", default=bool(REDIS))
PAYMENT_CONFIRMATION_DELAY = env.float("PAYMENT_CONFIRMATION_DELAY", default=3.0)
FULFILMENT_STEP_DELAY = env.float("FULFILMENT_STEP_DELAY", default=10.0)
UNPAID_ORDER_TIMEOUT_MINUTES = env.int("UNPAID_ORDER_TIMEOUT_MINUTES", default=60)
# Seconds between the runs that cancel them (beat's; in embedded mode the web process's, shop/embedded_schedule.py).
UNPAID_ORDER_CHECK_SECONDS = env.float("UNPAID_ORDER_CHECK_SECONDS", default=60.0)

CELERY_BEAT_SCHEDULE = {
    "republish-notifications": {
        "task": "notifications.tasks.republish_notifications",
        "schedule": float(NOTIFICATION_REPUBLISH_AFTER),
        "options": {"expires": NOTIFICATION_REPUBLISH_AFTER},
    },
    "deliver-notifications": {
        "task": "notifications.tasks.deliver_notifications",
        "schedule": NOTIFICATION_DELIVERY_INTERVAL,
        "options": {"expires": NOTIFICATION_DELIVERY_INTERVAL},
    },
    "cancel-unpaid-orders": {
        "task": "orders.tasks.cancel_unpaid_orders",
        "schedule": UNPAID_ORDER_CHECK_SECONDS,
        "options": {"expires": UNPAID_ORDER_CHECK_SECONDS},
    },
    "notify-support-replies": {
        "task": "support.tasks.notify_support_replies",
        "schedule": CHAT_NOTIFY_INTERVAL,
        "options": {"expires": CHAT_NOTIFY_INTERVAL},
    },
    "prune-notifications": {
        "task": "notifications.tasks.prune_notifications",
        "schedule": 6 * 3600.0,
    },
}

# --- Logging -------------------------------------------------------------------

# "console" (readable lines, the default) or "json" (one JSON object per line, for a log pipeline); shop/logs.py.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {LOG_FORMAT!r}.")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}.")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
structlog_configure(log_format=LOG_FORMAT)
# django-structlog: a request's id comes from X-Request-ID as shop/request_logs.py made it (a sane token the
# client or proxy sent, or a new one); the client address is REMOTE_ADDR (shop/proxy.py), never ipware's guess
# from headers; `request_started` is DEBUG (each request's `request_finished` line says it all), and so are a
# task's start and success (a beat task every few seconds; tasks log what they did).
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_CELERY_TASK_SUCCESS_LOG_LEVEL = logging.DEBUG
