"""Row locks, taken one way everywhere: `select_for_update(of=("self",))`, evaluated at once."""

from payments.models import Payment


def lock_payment(payment_id: int) -> Payment:
    """Lock the payment row until the surrounding transaction ends. Call inside `transaction.atomic()`.

    The risk assessment is read alongside for rendering, but with the snapshot taken before any wait for
    the lock: code that decides on the review state reads it again after the lock (risk services, capture).
    """
    return Payment.objects.select_for_update(of=("self",)).select_related("risk_assessment").get(pk=payment_id)
