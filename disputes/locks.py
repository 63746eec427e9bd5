"""Row locks. Lock order everywhere: the payment first (`payments.locks.lock_payment`), then its dispute."""

from disputes.models import Dispute


def lock_dispute(dispute_id: int) -> Dispute:
    """Lock a dispute row (with its payment, which it renders) until the surrounding transaction ends."""
    return Dispute.objects.select_for_update(of=("self",)).select_related("payment").get(pk=dispute_id)
