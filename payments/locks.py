"""Row locks, taken one way everywhere: `select_for_update(of=("self",))`, evaluated at once."""

from collections.abc import Iterable

from accounts.models import User
from config.rows import lock_row
from payments.models import IdempotencyKey, Payment
from payments.saving import remember_as_locked


def lock_payment(payment_id: int) -> Payment:
    """Lock the payment row until the surrounding transaction ends. Call inside `transaction.atomic()`.

    The row is read after the lock is granted, so everything on it (status, review hold) is current; a copy
    of it is kept as the old side of the audit log entry of the next `payment_save`.
    """
    return remember_as_locked(lock_row(Payment, payment_id))  # select_for_update(of=("self",)).get(pk=…)


def lock_payments(payment_ids: Iterable[int]) -> dict[int, Payment]:
    """Lock several payments in one statement, in id order, until the surrounding transaction ends (by id).

    Every lock of more than one payment takes them in id order, so two such transactions never wait on
    each other in a cycle; each payment is kept as `lock_payment` keeps it. A payment that does not exist
    is not in the answer.
    """
    locked = Payment.objects.select_for_update(of=("self",)).filter(pk__in=sorted(set(payment_ids))).order_by("pk")
    return {payment.pk: remember_as_locked(payment) for payment in locked}


def lock_idempotency_key(*, client: User, key: str) -> IdempotencyKey:
    """Lock an API client's idempotency key row (it exists: claimed by an insert just before)."""
    return IdempotencyKey.objects.select_for_update().get(client=client, key=key)
