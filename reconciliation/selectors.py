"""Reads of reconciliation results: a run's discrepancies counted per kind and state."""

from django.db.models import Count

from reconciliation.models import DiscrepancyState, ReconciliationRun, kinds_of


def run_summary(run: ReconciliationRun) -> list[tuple[str, int, int, int]]:
    """(kind label, found, fixed, open) per kind the run's scope covers, for the command's table — one query."""
    counts: dict[tuple[str, str], int] = {
        (row["kind"], row["state"]): row["n"]
        for row in run.discrepancies.order_by().values("kind", "state").annotate(n=Count("id"))
    }
    summary = []
    for kind in kinds_of(run.scope):
        found = sum(n for (k, _state), n in counts.items() if k == kind)
        fixed = counts.get((kind, DiscrepancyState.FIXED), 0)
        still_open = counts.get((kind, DiscrepancyState.OPEN), 0)
        summary.append((str(kind.label), found, fixed, still_open))
    return summary
