"""Prometheus metrics of the risk rules and the review queue (exported on /metrics).

The queue's gauges are computed when /metrics is scraped (`ReviewQueueCollector`), not set by the
sweep in the worker: every web process then shows the same, current values.
"""

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from payments.models import ReviewState
from risk.models import RiskAssessment, RiskSettings

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


def count_decision(*, decision: str, rules: list[str]) -> None:
    DECISIONS.labels(decision=decision).inc()
    for rule in rules or ["none"]:
        RULE_DECISIONS.labels(rule=rule, decision=decision).inc()


class ReviewQueueCollector:
    """`risk_reviews_pending`, `risk_review_oldest_age_seconds`, `risk_reviews_overdue` (past the reminder age).

    Two queries: the settings row by primary key, and one aggregate over the held payments (the partial
    index `payment_held_idx`) joined to their assessments (unique `payment_id`).
    """

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        remind_hours = RiskSettings.objects.filter(pk=1).values_list("review_remind_hours", flat=True).first()
        if remind_hours is None:  # no settings row yet: the default the row would be created with
            remind_hours = RiskSettings._meta.get_field("review_remind_hours").get_default()
        row = RiskAssessment.objects.filter(payment__review_state=ReviewState.PENDING).aggregate(
            pending=Count("id"),
            oldest=Min("created_at"),
            overdue=Count("id", filter=Q(created_at__lte=now - timedelta(hours=remind_hours))),
        )
        oldest = row["oldest"]
        yield GaugeMetricFamily("risk_reviews_pending", "Payments held for a manual review", row["pending"])
        yield GaugeMetricFamily(
            "risk_review_oldest_age_seconds",
            "Age of the oldest pending review (0 when none)",
            max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "risk_reviews_overdue",
            f"Pending reviews older than the reminder age (review_remind_hours, now {remind_hours} h)",
            row["overdue"],
        )
