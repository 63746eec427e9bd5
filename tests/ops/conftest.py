"""Operations tests: the alert rules and dashboard shipped in deploy/, and the metrics /metrics exports.

(Rebuilt by the metrics helper after it overwrote this file by mistake: paths, `promtool`, and the
fixtures the alert, dashboard and metrics tests use.)
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from django.test import Client

from tests.ops.promql import exposition_types, series_names
from tests.webhooks.conftest import payment_in  # noqa: F401 - the fixture, shared with the metrics tests

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "payments.json"
RUNBOOKS = ROOT / "docs" / "operations" / "runbooks.md"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian package `prometheus`, installed by scripts/ensure-system-deps.sh)."""
    return subprocess.run(  # noqa: S603 - fixed arguments from the tests
        ["promtool", *args],  # noqa: S607 - on PATH (/usr/bin)
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def alert_rules() -> list[dict]:
    """Every alerting rule of deploy/prometheus/alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture
def exported_series(db) -> set[str]:
    """The series names /metrics can show: every family it declares (`# TYPE`), histograms with their parts."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    return series_names(exposition_types(response.content.decode()))
