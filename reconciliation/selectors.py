"""Reads of reconciliation results: a run's discrepancies counted per kind and state."""

from django.db.models import Count

from reconciliation.models import DiscrepancyKind, DiscrepancyState, ReconciliationRun


def run_summary(run: ReconciliationRun) -> list[tuple[str, int, int, int]]:
    """(kind label, found, fixed, open) per kind, for the command's table — one aggregate query."""
    counts: dict[tuple[str, str], int] = {
        (row["kind"], row["state"]): row["n"]
        for row in run.discrepancies.order_by().values("kind", "state").annotate(n=Count("id"))
    }
    summary = []
    for kind in DiscrepancyKind:
        found = sum(n for (k, _state), n in counts.items() if k == kind)
        fixed = counts.get((kind, DiscrepancyState.FIXED), 0)
        still_open = counts.get((kind, DiscrepancyState.OPEN), 0)
        summary.append((str(kind.label), found, fixed, still_open))
    return summary
