"""Every write to a refund. Lock order is always payment, then refund.

A refund is created `pending` under the payment's row lock, counting pending refunds against what
is left, so concurrent refunds can never add up to more than was captured. The gateway call
happens afterwards, in a task, with the key `re_X:create`, so a retry never refunds twice.
"""

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from accounts.models import User
from payments import states as payment_states
from payments.errors import AmountTooLarge, PaymentUnexpectedState
from payments.gateways import get_gateway
from payments.gateways.base import Declined, Permanent, RefundResult, Retryable
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment
from payments.money import format_amount
from payments.services import event_record, payment_add_refunded
from refunds import states
from refunds.models import Refund, RefundStatusChange
from refunds.rendering import render_refund
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)
REFUNDABLE_STATUSES = frozenset(
    {payment_states.PaymentStatus.SUCCEEDED, payment_states.PaymentStatus.PARTIALLY_REFUNDED}
)


def lock_refund(refund_id: int) -> Refund:
    """Lock a refund row; take the payment's lock first when both are needed."""
    return Refund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund_id)


def refundable_amount(payment: Payment) -> int:
    """What is left to refund: received, less succeeded and pending refunds (one query)."""
    committed = (
        Refund.objects.filter(payment=payment, status__in=[RefundStatus.PENDING, RefundStatus.SUCCEEDED]).aggregate(
            total=Sum("amount")
        )["total"]
        or 0
    )
    return payment.amount_received - committed


def refund_create(
    *,
    payment: Payment,
    requested_by: User | None,
    amount: int | None = None,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    idempotency_key: str = "",
    source: str = ChangeSource.API,
) -> Refund:
    """Create a pending refund (the whole remaining amount by default) and submit it after commit.

    :raises PaymentUnexpectedState: the payment is not `succeeded` or `partially_refunded`.
    :raises AmountTooLarge: more than what is left to refund, counting pending refunds.
    """
    if idempotency_key:
        existing = Refund.objects.filter(payment=payment, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.status not in REFUNDABLE_STATUSES:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be refunded.")
        remaining = refundable_amount(locked)
        to_refund = remaining if amount is None else amount
        if to_refund <= 0 or to_refund > remaining:
            left = format_amount(max(remaining, 0), locked.currency)
            raise AmountTooLarge(f"amount exceeds what is left to refund ({remaining}, {left}).", param="amount")
        try:
            with transaction.atomic():
                refund = Refund.objects.create(
                    payment=locked,
                    amount=to_refund,
                    currency=locked.currency,
                    reason=reason,
                    metadata=metadata or {},
                    requested_by=requested_by,
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            return Refund.objects.get(payment=locked, idempotency_key=idempotency_key)
        RefundStatusChange.objects.create(
            refund=refund, from_status="", to_status=RefundStatus.PENDING, actor=requested_by, source=source
        )
        event_record(type="refund.created", payment=locked, data=render_refund(refund))
        transaction.on_commit(lambda: _enqueue_submit(refund.pk))
    logger.info(
        "Refund created",
        extra={
            "refund": refund.public_id,
            "payment": locked.public_id,
            "amount": format_amount(to_refund, refund.currency),
        },
    )
    return refund


def _enqueue_submit(refund_id: int) -> None:
    from refunds.tasks import submit_refund

    submit_refund.delay(refund_id=refund_id)


def refund_submit(*, refund_id: int) -> Refund:
    """Send a pending refund to the gateway (key `re_X:create`) and apply the answer.

    :raises Retryable: the gateway did not answer; the caller retries with the same key.
    """
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund
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
        return refund_apply_result(refund_id=refund_id, status=RefundStatus.FAILED, failure_reason=exc.message)
    return refund_apply_result(
        refund_id=refund_id,
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
) -> Refund:
    """Move a pending refund to the gateway's outcome; a succeeded refund counts on its payment.

    Applying the same outcome twice changes nothing the second time.
    """
    payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    with transaction.atomic():
        payment = lock_payment(payment_id)
        refund = lock_refund(refund_id)
        if gateway_reference and not refund.gateway_reference:
            refund.gateway_reference = gateway_reference
        if refund.status != RefundStatus.PENDING or status == RefundStatus.PENDING:
            refund.save()
            return refund
        changes: dict[str, Any] = {"needs_attention": False}
        if status == RefundStatus.FAILED:
            changes["failure_reason"] = (failure_reason or "The gateway refused the refund.")[:500]
        _transition(refund, status, source=source, actor=actor, **changes)
        if status == RefundStatus.SUCCEEDED:
            payment_add_refunded(payment=payment, amount=refund.amount, source=source, actor=actor)
        return refund


def refund_mark_needs_attention(*, refund_id: int, error: str) -> None:
    """Retries ran out: keep the refund pending and flag it for the back office."""
    Refund.objects.filter(pk=refund_id, status=RefundStatus.PENDING).update(
        needs_attention=True, last_error=error[:2000]
    )
    logger.error("Refund needs attention: retries exhausted", extra={"refund_id": refund_id})


def _transition(refund: Refund, to_status: str, *, source: str, actor: User | None = None, **changes: Any) -> Refund:
    from_status = refund.status
    states.check_transition(from_status, to_status)
    for name, value in changes.items():
        setattr(refund, name, value)
    refund.status = to_status
    refund.save()
    RefundStatusChange.objects.create(
        refund=refund, from_status=from_status, to_status=to_status, actor=actor, source=source
    )
    event_record(type=states.EVENT_FOR_STATUS[to_status], payment=refund.payment, data=render_refund(refund))
    logger.info("Refund status changed", extra={"refund": refund.public_id, "from": from_status, "to": to_status})
    return refund


# --- refunds made outside the service (reported by Stripe webhooks) -----------------------------
def refund_record_external(*, payment_id: int, result: RefundResult, source: str = ChangeSource.WEBHOOK) -> Refund:
    """Record a refund made at the gateway outside the service (the Stripe Dashboard) once, and apply its status.

    With the payment locked: the refund is created `pending` under its unique gateway reference (a
    second report finds it, and a concurrent insert ends in `IntegrityError`, so it exists once),
    then moved to the gateway's status; a succeeded refund counts in the payment's `amount_refunded`.

    :raises payment_states.InvalidTransition: it succeeded but the payment was never captured.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        refund = Refund.objects.filter(gateway_reference=result.reference).first()
        if refund is None:
            try:
                with transaction.atomic():
                    refund = Refund.objects.create(
                        payment=payment,
                        amount=result.amount,
                        currency=result.currency,
                        metadata=result.metadata,
                        gateway_reference=result.reference,
                        requested_by=None,
                    )
            except IntegrityError:
                refund = Refund.objects.get(gateway_reference=result.reference)
            else:
                RefundStatusChange.objects.create(
                    refund=refund,
                    from_status="",
                    to_status=RefundStatus.PENDING,
                    source=source,
                    reason="made outside the service",
                )
                event_record(type="refund.created", payment=payment, data=render_refund(refund))
                logger.info(
                    "Refund made outside the service recorded",
                    extra={"refund": refund.public_id, "payment": payment.public_id, "reference": result.reference},
                )
        return refund_apply_gateway_refund(refund_id=refund.pk, result=result, source=source)
