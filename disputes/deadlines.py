"""Evidence deadlines: open disputes whose evidence is not submitted and is due soon, warned once per threshold.

A dispute awaits evidence while it is open, nothing was submitted (`evidence_submitted_at`, the submission
count, a status under review) and its `evidence_due_by` is still ahead. Each is warned (a WARNING log with its id
and the hours left) once when it comes within 72 h and once within 24 h; a dispute first seen within 24 h gets
the 24 h warning only (it says more). The marks that a warning was given are kept in the cache (`cache.add`,
atomic on Redis: two beat runs at once warn once), until a day after the due date; a lost mark only repeats a
log line. `disputes_due_soon{window}` is computed from the database when `/metrics` is scraped (like the other
gauges, `config.metrics.SCRAPE_COLLECTORS`), so every process shows the same value.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from disputes import states
from disputes.models import Dispute

logger = logging.getLogger(__name__)

# (label, hours), the tighter last: a dispute is warned for the tightest threshold it is within.
THRESHOLDS: tuple[tuple[str, int], ...] = (("72h", 72), ("24h", 24))
_MARK_KEPT_AFTER_DUE = timedelta(days=1)


def awaiting_evidence(*, now: datetime) -> Q:
    """Open disputes whose evidence was not submitted and can still be (due date ahead)."""
    return (
        Q(status__in=states.OPEN)
        & ~Q(status__in=states.UNDER_REVIEW)
        & Q(evidence_submitted_at__isnull=True, submission_count=0, evidence_due_by__gt=now)
    )


def disputes_due_within(*, now: datetime) -> dict[str, int]:
    """Disputes awaiting evidence due within each threshold ({"72h": n, "24h": m}), in one query."""
    counts = Dispute.objects.filter(awaiting_evidence(now=now)).aggregate(
        **{
            label: Count("id", filter=Q(evidence_due_by__lte=now + timedelta(hours=hours)))
            for label, hours in THRESHOLDS
        }
    )
    return {label: counts[label] for label, _ in THRESHOLDS}


def _mark_key(public_id: str, label: str) -> str:
    return f"disputes:deadline-warned:{public_id}:{label}"


@dataclass(frozen=True)
class DeadlineWarning:
    dispute: str  # public id
    window: str  # "72h" | "24h"
    hours_left: float


def dispute_deadlines_warn(*, now: datetime | None = None) -> list[DeadlineWarning]:
    """Warn once per threshold for each dispute awaiting evidence due within 72 h or 24 h. Returns the warnings.

    One query (the disputes due within the widest threshold, by the `dispute_queue_idx` index) and one cache
    write per warning given.
    """
    now = now or timezone.now()
    widest = max(hours for _, hours in THRESHOLDS)
    rows = (
        Dispute.objects.filter(awaiting_evidence(now=now), evidence_due_by__lte=now + timedelta(hours=widest))
        .order_by("evidence_due_by", "id")
        .values_list("public_id", "evidence_due_by")
    )
    given: list[DeadlineWarning] = []
    for public_id, due_by in rows:
        assert due_by is not None  # noqa: S101 - filtered on `evidence_due_by__gt`
        left = due_by - now
        within = [label for label, hours in THRESHOLDS if left <= timedelta(hours=hours)]
        tightest = within[-1]
        kept = int((left + _MARK_KEPT_AFTER_DUE).total_seconds())
        if not cache.add(_mark_key(public_id, tightest), now.isoformat(), timeout=kept):
            continue  # warned for this threshold already
        for looser in within[:-1]:  # the tighter warning stands for the looser ones not given
            cache.add(_mark_key(public_id, looser), now.isoformat(), timeout=kept)
        hours_left = round(left.total_seconds() / 3600, 1)
        logger.warning(
            "Dispute evidence due in %s h (within %s) and not submitted",
            hours_left,
            tightest,
            extra={"dispute": public_id, "window": tightest, "hours_left": hours_left, "due_by": due_by.isoformat()},
        )
        given.append(DeadlineWarning(dispute=public_id, window=tightest, hours_left=hours_left))
    return given


class DueSoonCollector:
    """`disputes_due_soon{window="72h"|"24h"}`: open disputes without submitted evidence due within the window."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "disputes_due_soon",
            "Open disputes without submitted evidence whose evidence is due within the window",
            labels=["window"],
        )
        for label, count in disputes_due_within(now=timezone.now()).items():
            gauge.add_metric([label], count)
        yield gauge
