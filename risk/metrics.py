"""Prometheus metrics of the risk rules and the review queue (exported on /metrics)."""

from prometheus_client import Counter, Gauge

RULE_DECISIONS = Counter(
    "risk_rule_decisions_total",
    "Payments assessed, by rule that fired (none when no rule fired) and the payment's decision",
    ["rule", "decision"],
)
DECISIONS = Counter("risk_decisions_total", "Payments assessed, by decision", ["decision"])
REVIEWS_CLOSED = Counter(
    "risk_reviews_closed_total", "Manual reviews closed, by outcome (approved, rejected, expired)", ["outcome"]
)
REVIEWS_OVERDUE = Counter("risk_reviews_overdue_total", "Pending reviews reported as overdue by the sweep")
REVIEWS_PENDING = Gauge("risk_reviews_pending", "Reviews pending at the last sweep")
OLDEST_REVIEW_AGE = Gauge("risk_review_oldest_age_seconds", "Age of the oldest pending review at the last sweep")


def count_decision(*, decision: str, rules: list[str]) -> None:
    DECISIONS.labels(decision=decision).inc()
    for rule in rules or ["none"]:
        RULE_DECISIONS.labels(rule=rule, decision=decision).inc()
