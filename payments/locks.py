"""Row locks, taken one way everywhere: `select_for_update(of=("self",))`, evaluated at once."""

from collections.abc import Iterable
from dataclasses import dataclass

from accounts.models import User
from config.rows import lock_row, lock_row_where
from payments.models import IdempotencyKey, Payment
from payments.saving import remember_as_locked


def lock_payment(payment_id: int) -> Payment:
    """Lock the payment row until the surrounding transaction ends. Call inside `transaction.atomic()`.

    The row is read after the lock is granted, so everything on it (status, review hold) is current; a copy
    of it is kept as the old side of the audit log entry of the next `payment_save`.
    """
    return remember_as_locked(lock_row(Payment, payment_id))  # select_for_update(of=("self",)).get(pk=…)


@dataclass(frozen=True)
class PaymentOf:
    """A payment named by its public id, and the API client it must belong to (None: any, as for finance)."""

    public_id: str
    client_id: int | None


def lock_payment_of(payment: PaymentOf) -> Payment:
    """`lock_payment` of the payment `payment` names: found and locked in one statement (no read of its id first).

    :raises Payment.DoesNotExist: no such payment, or not that client's (no row of another client is locked).
    """
    where: dict[str, object] = {"public_id": payment.public_id}
    if payment.client_id is not None:
        where["client"] = payment.client_id
    return remember_as_locked(lock_row_where(Payment, where))


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
