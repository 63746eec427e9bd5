"""Prometheus metrics of the Stripe webhook inbox."""

from prometheus_client import Counter

from webhooks.models import IgnoredReason, WebhookEvent, WebhookStatus

WEBHOOK_EVENTS = Counter(
    "webhook_events_total",
    "Stripe webhook deliveries and processing runs, by event type and outcome: applied, duplicate, stale, "
    "ignored, failed, invalid_signature (type unknown: refused before the signature was verified)",
    ["type", "outcome"],
)


def webhook_count(type: str, outcome: str) -> None:  # noqa: A002 - the label's name
    WEBHOOK_EVENTS.labels(type=type, outcome=outcome).inc()


def webhook_processed_count(row: WebhookEvent) -> None:
    """Count one processing run by the row's new status: applied, stale or ignored."""
    if row.status == WebhookStatus.PROCESSED:
        outcome = "applied"
    elif row.ignored_reason == IgnoredReason.STALE:
        outcome = "stale"
    else:
        outcome = "ignored"
    webhook_count(row.type, outcome)
