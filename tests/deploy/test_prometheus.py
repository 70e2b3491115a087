"""deploy/prometheus/alerts.yml passes promtool and its unit tests; it and the dashboard ask only for our metrics."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Metric
from prometheus_client.metrics import MetricWrapperBase

from notifications import metrics
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "shop.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("promtool")
    if executable is None:
        if IN_CI:
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("needs promtool (Debian's prometheus package)")
    return subprocess.run([executable, *args], cwd=ALERTS.parent, capture_output=True, text=True, timeout=60)


def exported_families() -> list[Metric]:
    """Every metric family the shop exports (the outbox's described, so no database is read)."""
    wrappers = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    families = [family for wrapper in wrappers for family in wrapper.describe()]
    return families + list(metrics.OutboxCollector().describe())


def exported_names() -> set[str]:
    return {family.name + suffix for family in exported_families() for suffix in SUFFIXES[family.type]}


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bshop_[a-z_]+\b", expr))


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_the_alert_rules_pass_promtool_check_rules():
    checked = promtool("check", "rules", ALERTS.name)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests():
    tested = promtool("test", "rules", "alerts.test.yml")

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_alerts_cover_backlog_age_failures_and_silent_web_processes():
    by_name = {rule["alert"]: names_in(rule["expr"]) for rule in alert_rules()}

    assert by_name == {
        "ShopOutboxBacklogGrowing": {"shop_notifications_unpublished"},
        "ShopOldestUnpublishedOverAMinute": {"shop_notifications_oldest_unpublished_seconds"},
        "ShopNotificationPublishFailures": {"shop_notification_publish_failures_total"},
        "ShopWebProcessWithoutSockets": {"shop_ws_connections"},
    }


def test_every_alert_and_dashboard_expression_names_a_metric_we_export():
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()

    assert exprs and all(names_in(expr) for expr in exprs)
    assert {name for expr in exprs for name in names_in(expr)} - exported_names() == set()


def test_the_dashboard_shows_every_metric_we_export():
    shown = {name for expr in dashboard_exprs() for name in names_in(expr)}

    for family in exported_families():
        assert any(family.name + suffix in shown for suffix in SUFFIXES[family.type]), family.name


def test_the_metrics_issue_19_names_are_exported():
    assert {family.name for family in exported_families()} >= {
        "shop_ws_connections",
        "shop_ws_handshakes",
        "shop_ws_closes",
        "shop_notifications_published",
        "shop_notifications_unpublished",
        "shop_notifications_oldest_unpublished_seconds",
        "shop_notification_publish_failures",
        "shop_notification_commit_to_publish_seconds",
        "shop_notification_commit_to_delivered_seconds",
    }
