"""Settings come from the environment, and production refuses to start without a real secret."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings_in(environment: dict) -> subprocess.CompletedProcess:
    """Load shop.settings in a fresh interpreter with exactly `environment` (plus PATH)."""
    script = (
        "import django, json; from django.conf import settings; django.setup();"
        "print(json.dumps({'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS,"
        " 'db': settings.DATABASES['default']['ENGINE'], 'layer': settings.CHANNEL_LAYERS['default']['BACKEND'],"
        " 'eager': settings.CELERY_TASK_ALWAYS_EAGER, 'broker': settings.CELERY_BROKER_URL}))"
    )
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "shop.settings", **environment}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_refuses_to_start_without_a_secret_key():
    result = settings_in({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_embedded_mode_without_redis_uses_memory_layer_and_eager_tasks():
    result = settings_in({"DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert '"layer": "channels.layers.InMemoryChannelLayer"' in result.stdout
    assert '"eager": true' in result.stdout
    assert '"db": "django.db.backends.sqlite3"' in result.stdout


def test_redis_url_switches_to_the_redis_layer_and_broker():
    result = settings_in(
        {"SECRET_KEY": "x" * 50, "REDIS_URL": "redis://127.0.0.1:6379/3", "DATABASE_URL": "postgres://u@h/db",
         "ALLOWED_HOSTS": "shop.example.com,www.shop.example.com"}
    )
    assert result.returncode == 0, result.stderr
    assert '"layer": "channels_redis.core.RedisChannelLayer"' in result.stdout
    assert '"eager": false' in result.stdout
    assert '"broker": "redis://127.0.0.1:6379/3"' in result.stdout
    assert '"db": "django.db.backends.postgresql"' in result.stdout
    assert '"hosts": ["shop.example.com", "www.shop.example.com"]' in result.stdout
    assert '"debug": false' in result.stdout
