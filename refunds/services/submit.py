"""Submitting a refund to the gateway (key `re_X:create`) and applying what the gateway answers."""

import logging
from typing import Any

from django.db import transaction
from django.db.models import F

from accounts.models import User
from config.rows import batched
from gateways import get_gateway
from gateways.base import Declined, Permanent, RefundResult, Retryable
from payments.locks import lock_payment
from payments.models import ChangeSource
from payments.services import payment_add_refunded
from refunds.locks import lock_refund
from refunds.models import Refund
from refunds.saving import refund_save
from refunds.services.status import refund_status_change
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)
SUBMIT_TASK = "refunds.tasks.submit_refund"


def refund_submit(*, refund_id: int) -> Refund:
    """Send a pending refund to the gateway (key `re_X:create`) and apply the answer.

    :raises Retryable: the gateway did not answer; the caller retries with the same key.
    """
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
    # attempts and last_error are worker bookkeeping (left out of the audit log): a counter, updated with F().
    Refund.objects.filter(pk=refund_id).update(attempts=F("attempts") + 1)
    payment = refund.payment
    gateway = get_gateway(payment.gateway)
    try:
        result = gateway.create_refund(
            intent_reference=payment.gateway_reference or "",
            amount=refund.amount,
            reason=refund.reason,
            metadata={"refund_id": refund.public_id, "payment_id": payment.public_id},
            idempotency_key=f"{refund.public_id}:create",
        )
    except Retryable as exc:
        Refund.objects.filter(pk=refund_id).update(last_error=f"{type(exc).__name__}: {exc.message}"[:2000])
        raise
    except (Declined, Permanent) as exc:
        return refund_apply_result(
            refund_id=refund_id, payment_id=payment.pk, status=RefundStatus.FAILED, failure_reason=exc.message
        )
    return refund_apply_result(
        refund_id=refund_id,
        payment_id=payment.pk,
        status=result.status,
        gateway_reference=result.reference,
        failure_reason=result.failure_reason,
    )


def refund_apply_gateway_refund(*, refund_id: int, result: RefundResult, source: str = ChangeSource.WORKER) -> Refund:
    """Apply what the gateway says about a refund (used by submission, webhooks and recovery)."""
    return refund_apply_result(
        refund_id=refund_id,
        status=result.status,
        gateway_reference=result.reference,
        failure_reason=result.failure_reason,
        source=source,
    )


def refund_apply_result(
    *,
    refund_id: int,
    status: str,
    gateway_reference: str = "",
    failure_reason: str = "",
    source: str = ChangeSource.WORKER,
    actor: User | None = None,
    payment_id: int | None = None,
) -> Refund:
    """Move a pending refund to the gateway's outcome; a succeeded refund counts on its payment.

    Applying the same outcome twice changes nothing the second time. `payment_id`: the refund's payment,
    when the caller has read it (a refund never changes payment), so it is not read again before the locks.
    """
    if payment_id is None:
        payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    with transaction.atomic(), batched():
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id, payment=payment)
        reference_changed = bool(gateway_reference and not refund.gateway_reference)
        if reference_changed:
            refund.gateway_reference = gateway_reference
        if refund.status != RefundStatus.PENDING or status == RefundStatus.PENDING:
            if reference_changed:
                refund_save(refund, ["gateway_reference"])
            return refund
        changes: dict[str, Any] = {"needs_attention": False}
        if status == RefundStatus.FAILED:
            changes["failure_reason"] = (failure_reason or "The gateway refused the refund.")[:500]
        if reference_changed:
            changes["gateway_reference"] = gateway_reference
        refund_status_change(refund, status, source=source, actor=actor, **changes)
        if status == RefundStatus.SUCCEEDED:
            payment_add_refunded(payment=payment, amount=refund.amount, source=source, actor=actor)
        return refund


def refund_mark_needs_attention(*, refund_id: int, error: str) -> None:
    """Retries ran out: keep the refund pending and flag it for the back office."""
    payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    with transaction.atomic(), batched():
        refund = lock_refund(refund_id, payment=lock_payment(payment_id))
        if refund.status != RefundStatus.PENDING:
            return
        refund.needs_attention = True
        refund.last_error = error[:2000]
        refund_save(refund, ["needs_attention", "last_error"])
    logger.error("Refund needs attention: retries exhausted", extra={"refund_id": refund_id})
