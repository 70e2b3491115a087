"""The log formats: readable console lines by default, one JSON object per line with LOG_FORMAT=json."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import structlog

from tests.log_capture import json_log_captured

ROOT = Path(__file__).resolve().parents[2]

LOG_A_LINE = (
    "import django, logging; django.setup();"
    "from django.conf import settings; print(settings.LOG_FORMAT);"
    "logging.getLogger('shop.example').warning('Order %s stuck', 'A-1')"
)


def run_with(environment: dict) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "shop.settings", "DEBUG": "true", **environment}
    return subprocess.run([sys.executable, "-c", LOG_A_LINE], cwd=ROOT, env=env, capture_output=True, text=True)


def test_console_lines_are_the_default_format():
    result = run_with({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "console"
    [line] = [line for line in result.stderr.splitlines() if "Order A-1 stuck" in line]
    assert "[warning" in line and "[shop.example]" in line
    assert not line.startswith("{")


def test_json_format_writes_every_line_as_one_json_object():
    result = run_with({"LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    [line] = [line for line in lines if line["event"] == "Order A-1 stuck"]
    assert (line["level"], line["logger"]) == ("warning", "shop.example")
    assert line["timestamp"].endswith("Z")


def test_an_unknown_log_format_or_level_is_refused_at_start():
    assert "LOG_FORMAT must be one of console, json" in run_with({"LOG_FORMAT": "xml"}).stderr
    assert "LOG_LEVEL must be" in run_with({"LOG_LEVEL": "LOUD"}).stderr


def test_standard_library_and_structlog_lines_carry_the_bound_context_and_tracebacks_stay_on_one_line():
    with json_log_captured() as log, structlog.contextvars.bound_contextvars(request_id="r-1", user_id=7):
        logging.getLogger("third.party").info("plain %s", "message")
        structlog.get_logger("shop.example").info("order_shipped", order="A-1")
        try:
            raise ValueError("broken")
        except ValueError:
            logging.getLogger("third.party").exception("failed")
    plain, event, failed = log.lines()
    assert all((line["request_id"], line["user_id"]) == ("r-1", 7) for line in (plain, event, failed))
    assert (plain["event"], event["event"], event["order"]) == ("plain message", "order_shipped", "A-1")
    assert "ValueError: broken" in failed["exception"] and len(log.text().splitlines()) == 3
