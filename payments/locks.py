"""Row locks, taken one way everywhere: `select_for_update(of=("self",))`, evaluated at once."""

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


def lock_idempotency_key(*, client: User, key: str) -> IdempotencyKey:
    """Lock an API client's idempotency key row (it exists: claimed by an insert just before)."""
    return IdempotencyKey.objects.select_for_update().get(client=client, key=key)
