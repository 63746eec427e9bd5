"""Row locks of reconciliation results."""

from reconciliation.models import Discrepancy


def lock_discrepancy(discrepancy_id: int) -> Discrepancy:
    return Discrepancy.objects.select_for_update(of=("self",)).get(pk=discrepancy_id)
