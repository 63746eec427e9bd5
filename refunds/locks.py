"""Row locks of refunds. Lock order everywhere: the payment (`payments.locks.lock_payment`) first, then the refund."""

from refunds.models import Refund


def lock_refund(refund_id: int) -> Refund:
    """Lock a refund row until the surrounding transaction ends; take the payment's lock first when both are needed."""
    return Refund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund_id)
