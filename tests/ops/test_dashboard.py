"""deploy/grafana/payments.json: valid JSON, every query parses and selects only metrics the service exports."""

import re
import tempfile
from pathlib import Path

import yaml

from tests.ops.conftest import promtool
from tests.ops.promql import metric_names, series_names

# The contract's metrics (docs/api.md "Operations") and the ones the README documents.
CONTRACT_SERIES = {
    "payment_transactions_total",
    "payment_errors_total",
    "webhook_events_total",
    "idempotency_requests_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_request_duration_seconds_count",
    "gateway_request_duration_seconds_sum",
    "outbox_lag_seconds",
    "outbox_dead_letters",
    "payments_stuck_operations",
    "reconciliation_open_discrepancies",
    "risk_reviews_pending",
    "risk_review_oldest_age_seconds",
    "ratelimit_cache_errors_total",
    "ratelimit_rejections_total",
    "disputes_due_soon",
}
PROMETHEUS_BUILTINS = {"ALERTS"}
# Grafana's variables, replaced by values of the same kind so promtool can parse the query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$gateway": ".*"}


def django_prometheus_series() -> set[str]:
    """The series of the installed django-prometheus middleware."""
    from django_prometheus.middleware import Metrics
    from prometheus_client.metrics import MetricWrapperBase

    metrics = [value for value in vars(Metrics.get_instance()).values() if isinstance(value, MetricWrapperBase)]
    return series_names({m._name + ("_total" if m._type == "counter" else ""): m._type for m in metrics})


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict) -> list[str]:
    exprs = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    exprs += [annotation["expr"] for annotation in dashboard["annotations"]["list"] if "expr" in annotation]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs += re.findall(r"label_values\((\w+)", variable["definition"])
    return exprs


def grafana_free(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_metric_names_reads_names_not_functions_labels_or_keywords():
    expr = (
        'histogram_quantile(0.99, sum by (gateway, le) (rate(a_bucket{outcome=~"ok|x_total"}[5m]))) > 2'
        " and on (gateway) b_total offset 5m / ignoring (pid) max(c)"
    )

    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_the_dashboard_is_valid_json_with_a_unique_id_per_panel_and_a_query_in_each(dashboard):
    ids = [panel["id"] for panel in panels(dashboard)]

    assert dashboard["uid"] == "payments-service"
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_dashboard_query_parses(dashboard):
    rules = [
        {"record": f"dashboard:query_{index}", "expr": grafana_free(expr)}
        for index, expr in enumerate(expressions(dashboard))
    ]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = promtool("check", "rules", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_dashboard_uses_only_the_contract_metrics_and_django_prometheus_ones(dashboard):
    allowed = CONTRACT_SERIES | django_prometheus_series() | PROMETHEUS_BUILTINS

    for expr in expressions(dashboard):
        assert metric_names(grafana_free(expr)) - allowed == set(), expr


def test_the_dashboard_shows_every_metric_an_alert_fires_on(dashboard, alert_rules):
    shown = set().union(*(metric_names(grafana_free(expr)) for expr in expressions(dashboard)))

    for rule in alert_rules:
        assert metric_names(rule["expr"]) - shown == set(), rule["alert"]


def test_the_dashboard_uses_only_series_the_service_exports(dashboard, exported_series):
    for expr in expressions(dashboard):
        assert metric_names(grafana_free(expr)) - exported_series - PROMETHEUS_BUILTINS == set(), expr
