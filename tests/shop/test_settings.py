"""Settings come from the environment, and production refuses to start without a real secret."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import channels_redis
import pytest
import redis
from channels_redis.utils import create_pool
from django.core.exceptions import ImproperlyConfigured

from shop.channel_layers import channel_layers_config

ROOT = Path(__file__).resolve().parents[2]
REAL_SECRET = "k7#Vq2!xR9mZ@p4L$w8N^b3T&c6Y*f1Jh5Gd0Se2Ua9Oi4Er7Wt"
PRODUCTION = {"SECRET_KEY": REAL_SECRET, "ALLOWED_HOSTS": "shop.example.com"}


def clean_env(environment: dict) -> dict:
    return {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "shop.settings", **environment}


def settings_in(environment: dict) -> subprocess.CompletedProcess:
    """Load shop.settings in a fresh interpreter with exactly `environment` (plus PATH)."""
    script = (
        "import django, json; from django.conf import settings; django.setup();"
        "print(json.dumps({'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS,"
        " 'db': settings.DATABASES['default']['ENGINE'], 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'],"
        " 'eager': settings.CELERY_TASK_ALWAYS_EAGER, 'broker': settings.CELERY_BROKER_URL,"
        " 'secure_cookies': settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE,"
        " 'hsts': settings.SECURE_HSTS_SECONDS, 'ssl_redirect': settings.SECURE_SSL_REDIRECT,"
        " 'proxy_header': settings.SECURE_PROXY_SSL_HEADER, 'trusted_proxies': settings.TRUSTED_PROXIES,"
        " 'layer_hosts': [h['address'] for h in settings.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts', [])],"
        " 'login_limits': settings.LOGIN_LIMIT_STORAGE}))"
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean_env(environment), capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = settings_in({"DEBUG": "false", "ALLOWED_HOSTS": "shop.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("weak", ["short", "x" * 60, "django-insecure-" + "abcdefghij" * 5])
def test_production_refuses_to_start_with_a_guessable_secret_key(weak):
    result = settings_in({"DEBUG": "false", "ALLOWED_HOSTS": "shop.example.com", "SECRET_KEY": weak})
    assert result.returncode != 0
    assert "SECRET_KEY must be a real secret" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = settings_in({"DEBUG": "false", "SECRET_KEY": REAL_SECRET})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must name" in result.stderr


def test_production_sets_https_only_cookies_hsts_and_trusts_no_proxy_unless_told():
    """The scheme comes from the ASGI scope (shop/proxy.py), never from a header any client can send."""
    result = settings_in(PRODUCTION)
    assert result.returncode == 0, result.stderr
    for expected in ('"secure_cookies": true', '"hsts": 31536000', '"ssl_redirect": true',
                     '"proxy_header": null', '"trusted_proxies": []'):  # fmt: skip
        assert expected in result.stdout


def test_trusted_proxies_come_from_the_environment_and_refuse_anything_but_addresses():
    trusted = settings_in({**PRODUCTION, "TRUSTED_PROXIES": "172.28.0.10,10.1.0.0/16"})
    assert '"trusted_proxies": ["172.28.0.10", "10.1.0.0/16"]' in trusted.stdout, trusted.stderr
    refused = settings_in({**PRODUCTION, "TRUSTED_PROXIES": "nginx"})
    assert refused.returncode != 0
    assert "TRUSTED_PROXIES must be IP addresses or CIDR blocks" in refused.stderr


@pytest.mark.parametrize("variable", ["LOGIN_USERNAME_FAILURE_LIMIT", "LOGIN_ADDRESS_FAILURE_LIMIT"])
@pytest.mark.parametrize("value", ["thirty an hour", "30/hour;5/minute"])
def test_a_login_limit_that_is_not_one_limit_refuses_to_start(variable, value):
    result = settings_in({**PRODUCTION, variable: value})
    assert result.returncode != 0
    assert f"{variable} must be one limit" in result.stderr


def test_check_deploy_with_production_settings_reports_nothing():
    env = clean_env({**PRODUCTION, "DATABASE_URL": "postgres://shop@db.example.com/shop",
                     "REDIS_URL": "redis://redis.example.com:6379/0"})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_embedded_mode_without_redis_uses_memory_layer_and_eager_tasks():
    result = settings_in({"DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert '"layer": "channels.layers.InMemoryChannelLayer"' in result.stdout
    assert '"eager": true' in result.stdout
    assert '"db": "django.db.backends.sqlite3"' in result.stdout


def test_redis_url_switches_to_the_redis_layer_and_broker():
    result = settings_in(
        {
            "SECRET_KEY": REAL_SECRET,
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "DATABASE_URL": "postgres://u@h/db",
            "ALLOWED_HOSTS": "shop.example.com,www.shop.example.com",
        }
    )
    assert result.returncode == 0, result.stderr
    assert '"layer": "channels_redis.pubsub.RedisPubSubChannelLayer"' in result.stdout
    assert '"eager": false' in result.stdout
    assert '"broker": "redis://127.0.0.1:6379/3"' in result.stdout
    assert '"db": "django.db.backends.postgresql"' in result.stdout
    assert '"hosts": ["shop.example.com", "www.shop.example.com"]' in result.stdout
    assert '"debug": false' in result.stdout


def test_channel_layer_redis_urls_shard_the_layer_and_leave_the_broker_and_limits_on_redis_url():
    shards = "redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0"
    result = settings_in({**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:6379/3", "CHANNEL_LAYER_REDIS_URLS": shards})

    assert result.returncode == 0, result.stderr
    configured = json.loads(result.stdout)
    assert configured["layer_hosts"] == shards.split(",")
    assert configured["broker"] == configured["login_limits"] == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize("backend", ["pubsub", "core"])
def test_channel_layer_connections_name_redis_py_and_channels_redis_from_one_driver_info(backend):
    """Worked out once: redis-py would read its version from the package metadata for every connection."""
    host = channel_layers_config("redis://127.0.0.1:6379/0", backend, "test")["default"]["CONFIG"]["hosts"][0]

    first, second = (create_pool(host).make_connection() for _ in range(2))  # as channels_redis makes them

    assert first.driver_info is second.driver_info
    assert first.driver_info.formatted_name == f"redis-py(channels-redis_v{channels_redis.__version__})"
    assert first.driver_info.lib_version == redis.__version__


def test_the_channel_layer_config_imports_without_running_the_settings_production_guards():
    """The tests and the bench build layers from it; a production environment with no secret must not stop them."""
    script = (
        "import json, sys; from shop.channel_layers import channel_layers_config;"
        "print(json.dumps(channel_layers_config('redis://127.0.0.1:6379/0', 'core', 'p', group_expiry=7)"
        "['default']['CONFIG']['group_expiry'])); print('shop.settings' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean_env({"DEBUG": "false"}), capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "False"]


def test_an_unknown_channel_layer_backend_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match='"core" or "pubsub"'):
        channel_layers_config("redis://127.0.0.1:6379/0", "rabbitmq", "p")


def test_the_web_process_collects_garbage_with_the_configured_thresholds_and_start_up_frozen():
    script = "import gc, shop.asgi; print(gc.get_threshold(), gc.get_freeze_count() > 10_000)"
    environment = clean_env({"DEBUG": "true", "WEB_GC_THRESHOLDS": "20000,15,12"})
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(20000,", "15,", "12)", "True"]


STRICT_POLICY = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
    "object-src": "'none'", "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'",
}  # fmt: skip
FEATURES_OFF = {
    "accelerometer", "bluetooth", "browsing-topics", "camera", "display-capture", "geolocation", "gyroscope", "hid",
    "magnetometer", "microphone", "midi", "payment", "serial", "usb",
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"),
    [("/", 200), ("/accounts/login/", 200), ("/admin/login/", 200), ("/static/js/live.js", 200), ("/?q=a%00b", 400)],
)
def test_every_response_carries_a_strict_content_security_policy_and_switches_unused_features_off(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    policy = dict(part.split(" ", 1) for part in response["Content-Security-Policy"].split("; "))
    assert policy == STRICT_POLICY
    features = dict(part.split("=", 1) for part in response["Permissions-Policy"].split(", "))
    assert features == {feature: "()" for feature in FEATURES_OFF}


@pytest.mark.django_db
def test_the_csrf_cookie_is_http_only_and_the_form_carries_the_token(client):
    response = client.get("/accounts/login/")
    assert response.cookies["csrftoken"]["httponly"] is True
    assert b'name="csrfmiddlewaretoken"' in response.content


def email_settings_in(environment: dict) -> dict:
    script = (
        "import django, json; from django.conf import settings; django.setup();"
        "print(json.dumps({name: getattr(settings, name, None) for name in ('EMAIL_BACKEND', 'EMAIL_HOST',"
        " 'EMAIL_PORT', 'EMAIL_HOST_USER', 'EMAIL_HOST_PASSWORD', 'EMAIL_USE_TLS', 'EMAIL_TIMEOUT', 'SITE_URL')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean_env(environment), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_embedded_mode_prints_emails_on_the_console_and_a_deployment_relays_to_its_own_port_25():
    embedded = email_settings_in({"DEBUG": "true"})
    deployed = email_settings_in({**PRODUCTION, "DEBUG": "false", "REDIS_URL": "redis://127.0.0.1:1/0"})

    assert embedded["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert embedded["SITE_URL"] == "http://127.0.0.1:8000"
    assert deployed["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (deployed["EMAIL_HOST"], deployed["EMAIL_PORT"], deployed["EMAIL_TIMEOUT"]) == ("localhost", 25, 10.0)
    assert deployed["SITE_URL"] == "https://shop.example.com"


def test_email_url_configures_the_smtp_server_and_site_url_the_links():
    configured = email_settings_in(
        {**PRODUCTION, "DEBUG": "false", "EMAIL_URL": "smtp+tls://mailer:s3cret@smtp.example.com:587",
         "SITE_URL": "https://shop.example.com/"}
    )  # fmt: skip

    assert configured["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (configured["EMAIL_HOST"], configured["EMAIL_PORT"]) == ("smtp.example.com", 587)
    assert (configured["EMAIL_HOST_USER"], configured["EMAIL_HOST_PASSWORD"]) == ("mailer", "s3cret")
    assert configured["EMAIL_USE_TLS"] is True
    assert configured["SITE_URL"] == "https://shop.example.com"


def test_every_variable_the_settings_read_is_in_the_readmes_configuration_table():
    read = set(re.findall(r'env\.[a-z_]+\(\s*"([A-Z][A-Z0-9_]*)"', (ROOT / "shop" / "settings.py").read_text()))
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Production")]

    assert read and {name for name in read if f"`{name}`" not in table} == set()
