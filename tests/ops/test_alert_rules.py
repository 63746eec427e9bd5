"""deploy/prometheus/alerts.yml: valid for promtool, every alert unit-tested firing and not firing, runbooks exist."""

import re

import yaml

from tests.ops.conftest import ALERT_TESTS, ALERTS, RUNBOOKS, promtool
from tests.ops.promql import metric_names


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_promtool_check_rules_accepts_the_alert_rules(alert_rules):
    result = promtool("check", "rules", str(ALERTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules)} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass():
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "FAILED" not in result.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not(alert_rules):
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    names = {rule["alert"] for rule in alert_rules}

    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested staying silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_that_exists(alert_rules):
    anchors = heading_anchors(RUNBOOKS.read_text())

    assert len(alert_rules) == len({rule["alert"] for rule in alert_rules})
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations/runbooks.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {RUNBOOKS.name}"


def test_alerts_cover_the_signals_of_the_issue(alert_rules):
    used = set().union(*(metric_names(rule["expr"]) for rule in alert_rules))

    assert used >= {
        "payment_transactions_total",
        "webhook_events_total",
        "gateway_request_duration_seconds_count",
        "gateway_request_duration_seconds_bucket",
        "outbox_lag_seconds",
        "outbox_dead_letters",
        "payments_stuck_operations",
        "reconciliation_open_discrepancies",
        "risk_review_oldest_age_seconds",
        "django_http_responses_total_by_status_total",
    }


def test_alerts_use_only_series_the_service_exports(alert_rules, exported_series):
    for rule in alert_rules:
        assert metric_names(rule["expr"]) - exported_series == set(), rule["alert"]
