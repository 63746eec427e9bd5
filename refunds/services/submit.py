"""Submitting a refund to the gateway (key `re_X:create`) and applying what the gateway answers."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Field

from accounts.models import User
from config.rows import batched
from gateways import get_gateway
from gateways.base import Declined, Permanent, RefundResult, Retryable
from payments.locks import lock_payment, lock_payments
from payments.models import ChangeSource, Payment
from payments.services import payment_add_refunded
from refunds.locks import lock_refund, lock_refunds
from refunds.models import Refund
from refunds.saving import refund_save
from refunds.services.status import refund_status_change
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)
SUBMIT_TASK = "refunds.tasks.submit_refund"


def refund_submit(*, refund_id: int) -> Refund:
    """Send a pending refund to the gateway (key `re_X:create`) and apply the answer.

    Only a refund the gateway has not accepted yet (no gateway reference) is sent: one it holds, still
    pending there, is not refunded again; its outcome comes by webhook (or reconciliation).

    :raises Retryable: the gateway did not answer; the caller retries with the same key.
    """
    submission = _count_attempt(refund_id)
    if submission is None:  # no longer to submit (or no such refund: DoesNotExist, as before)
        return Refund.objects.select_related("payment").get(pk=refund_id)
    answer = gateway_answer(submission)
    if isinstance(answer, Retryable):
        note_retryable(submission, answer)
        raise answer
    return apply_answer(submission, answer)


@dataclass(frozen=True)
class Submission:
    """What the gateway call of a refund needs: the refund's own fields and its payment's."""

    refund_id: int
    amount: int
    reason: str
    public_id: str
    payment_id: int
    gateway: str
    intent_reference: str
    payment_public_id: str


Answer = RefundResult | Declined | Permanent | Retryable


def gateway_answer(submission: Submission) -> Answer:
    """The gateway's answer to the refund's call with key `re_X:create`, its errors returned, not raised.

    Touches no database (the batch makes these calls from threads of its own).
    """
    gateway = get_gateway(submission.gateway)
    try:
        return gateway.create_refund(
            intent_reference=submission.intent_reference,
            amount=submission.amount,
            reason=submission.reason,
            metadata={"refund_id": submission.public_id, "payment_id": submission.payment_public_id},
            idempotency_key=f"{submission.public_id}:create",
        )
    except (Retryable, Declined, Permanent) as exc:
        return exc


def note_retryable(submission: Submission, error: Retryable) -> None:
    """Keep the gateway's last retryable error on the refund (it stays pending, for a retry with the same key)."""
    Refund.objects.filter(pk=submission.refund_id).update(last_error=f"{type(error).__name__}: {error.message}"[:2000])


def apply_answer(submission: Submission, answer: RefundResult | Declined | Permanent) -> Refund:
    """Apply the gateway's answer: its status (a decline or a permanent error fails the refund)."""
    status, reference, reason = _outcome(answer)
    return refund_apply_result(
        refund_id=submission.refund_id,
        payment_id=submission.payment_id,
        status=status,
        gateway_reference=reference,
        failure_reason=reason,
    )


def apply_answers(answers: Sequence[tuple[Submission, RefundResult | Declined | Permanent]]) -> list[Refund]:
    """Apply several refunds' answers in one transaction, as `apply_answer` applies each (a batch's answers).

    Their payments are locked in one statement, in id order, then the refunds in one statement: one commit
    and two locking reads for the batch, instead of a transaction and two reads per refund. If anything
    fails, nothing is applied (the transaction rolls back) and the error is raised: the caller applies the
    answers one by one, so that one refund's trouble does not hold back the others.

    :raises DatabaseError, ObjectDoesNotExist: as `apply_answer` does, for any of them.
    """
    with transaction.atomic(), batched():
        payments = lock_payments(submission.payment_id for submission, _ in answers)
        refunds = lock_refunds((submission.refund_id for submission, _ in answers), payments=payments)
        applied = []
        for submission, answer in answers:
            if submission.refund_id not in refunds:
                raise Refund.DoesNotExist(f"Refund matching query does not exist (id {submission.refund_id}).")
            refund = refunds[submission.refund_id]
            status, reference, reason = _outcome(answer)
            applied.append(
                _apply_locked(
                    refund,
                    refund.payment,
                    status=status,
                    gateway_reference=reference,
                    failure_reason=reason,
                    source=ChangeSource.WORKER,
                )
            )
    return applied


def _outcome(answer: RefundResult | Declined | Permanent) -> tuple[str, str, str]:
    """The status, gateway reference and failure reason an answer gives (a decline or a permanent error: failed)."""
    if isinstance(answer, RefundResult):
        return answer.status, answer.reference, answer.failure_reason
    return RefundStatus.FAILED, "", answer.message


def submission_from_row(row: Sequence[Any]) -> Submission:
    """A `Submission` from a row whose columns are `SUBMISSION_COLUMNS`, in order."""
    refund_id, amount, reason, public_id, payment_id, gateway, intent_reference, payment_public_id = row
    return Submission(
        refund_id, amount, reason, public_id, payment_id, gateway, intent_reference or "", payment_public_id
    )


def _count_attempt(refund_id: int) -> Submission | None:
    """Count one more attempt of a pending refund and read what its gateway call needs, in one statement.

    `attempts` (like `last_error`) is worker bookkeeping, left out of the audit log: a counter added to in
    SQL. None when the refund is not pending, or the gateway holds it already (it has a gateway reference).
    """
    with connection.cursor() as cursor:
        cursor.execute(_attempt_sql(connection.vendor), [refund_id, RefundStatus.PENDING])
        row = cursor.fetchone()
    return None if row is None else submission_from_row(row)


def sql_column(model: type[Refund | Payment], name: str) -> str:
    """The quoted column of a model's field."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 - a concrete column of the model
    return connection.ops.quote_name(str(field.column))


@cache
def submission_columns(vendor: str) -> str:
    """The RETURNING list of an UPDATE of refunds that gives a `Submission` (the payment's as subqueries:
    SQLite's RETURNING may not name an UPDATE's FROM tables)."""
    quote = connection.ops.quote_name
    refunds, payments = quote(Refund._meta.db_table), quote(Payment._meta.db_table)
    paid = f"{refunds}.{sql_column(Refund, 'payment')}"
    of_payment = [
        f"(SELECT {sql_column(Payment, name)} FROM {payments} WHERE {sql_column(Payment, 'id')} = {paid})"  # noqa: S608 - names
        for name in ("gateway", "gateway_reference", "public_id")
    ]
    own = [f"{refunds}.{sql_column(Refund, name)}" for name in ("id", "amount", "reason", "public_id", "payment")]
    return ", ".join([*own, *of_payment])


@cache
def _attempt_sql(vendor: str) -> str:
    """`UPDATE … SET attempts = attempts + 1 WHERE id = %s AND status = %s AND gateway_reference IS NULL RETURNING …`"""
    refunds = connection.ops.quote_name(Refund._meta.db_table)
    attempts = sql_column(Refund, "attempts")
    return (
        f"UPDATE {refunds} SET {attempts} = {attempts} + 1 "  # noqa: S608 - names from the models
        f"WHERE {sql_column(Refund, 'id')} = %s AND {sql_column(Refund, 'status')} = %s "
        f"AND {sql_column(Refund, 'gateway_reference')} IS NULL RETURNING {submission_columns(vendor)}"
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
        return _apply_locked(
            refund,
            payment,
            status=status,
            gateway_reference=gateway_reference,
            failure_reason=failure_reason,
            source=source,
            actor=actor,
        )


def _apply_locked(
    refund: Refund,
    payment: Payment,
    *,
    status: str,
    gateway_reference: str = "",
    failure_reason: str = "",
    source: str,
    actor: User | None = None,
) -> Refund:
    """`refund_apply_result` on a refund and its payment the caller has locked (payment first), in its transaction."""
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
