"""Row locks, taken one way everywhere: `select_for_update(of=("self",))`, evaluated at once."""

from payments.models import Payment


def lock_payment(payment_id: int) -> Payment:
    """Lock the payment row (with its risk assessment read alongside) until the surrounding transaction ends.

    Call inside `transaction.atomic()`. Review decisions lock the payment too, so the review read here is current.
    """
    return Payment.objects.select_for_update(of=("self",)).select_related("risk_assessment").get(pk=payment_id)
