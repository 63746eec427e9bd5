"""Row locks of refunds. Lock order everywhere: the payment (`payments.locks.lock_payment`) first, then the refund."""

from collections.abc import Iterable

from config.rows import lock_row
from payments.models import Payment
from refunds.models import Refund
from refunds.saving import remember_as_locked


def lock_refund(refund_id: int, *, payment: Payment | None = None) -> Refund:
    """Lock a refund row until the surrounding transaction ends; take the payment's lock first when both are needed.

    `payment`: the refund's payment, already locked by the caller: the refund is read alone (`config.rows.lock_row`)
    and given that payment, instead of being read with its payment joined. A copy of the row as read under the lock
    is kept as the old side of the audit entry of the next `refund_save`.
    """
    if payment is None:
        refund = Refund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund_id)
        return remember_as_locked(refund)
    refund = lock_row(Refund, refund_id)
    if refund.payment_id != payment.pk:
        raise ValueError(f"refund {refund_id} is not a refund of payment {payment.pk}")
    refund.payment = payment
    return remember_as_locked(refund)


def lock_refunds(refund_ids: Iterable[int], *, payments: dict[int, Payment]) -> dict[int, Refund]:
    """Lock several refunds in one statement, in id order, after their payments (`payments.locks.lock_payments`).

    Each refund is given its payment from `payments` (by id) and kept as `lock_refund` keeps it. A refund that
    does not exist is not in the answer; one whose payment is not in `payments` is an error.
    """
    locked = Refund.objects.select_for_update(of=("self",)).filter(pk__in=sorted(set(refund_ids))).order_by("pk")
    refunds = {}
    for refund in locked:
        if refund.payment_id not in payments:
            raise ValueError(f"refund {refund.pk}: its payment {refund.payment_id} is not locked")
        refund.payment = payments[refund.payment_id]
        refunds[refund.pk] = remember_as_locked(refund)
    return refunds
