"""Every write to disputes, in atomic phases.

`dispute_apply` takes what the gateway says about a dispute (a webhook's object, or the answer to our own
call) and stores it once (unique gateway reference) or moves ours forward through the state machine: news
our status cannot reach (a late `created` after `closed`) changes nothing, and news of the same status only
adds (evidence, the submission count, the funds flags, which never go back). It runs under the payment's row
lock, then the dispute's, and sets what the payment's disputes hold of it (`amount_disputed`, and what may
not be refunded) in the same transaction.

Evidence and acceptance call the gateway outside any transaction: lock → check → record the attempt → commit
→ call with a key derived from our ids (`dp_X:evidence:<n>`, `dp_X:accept`) → apply the answer.
"""

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from disputes import states
from disputes.errors import DisputeUnexpectedState, ParameterInvalid
from disputes.locks import lock_dispute
from disputes.models import Dispute, DisputeEvidenceFile
from disputes.status import dispute_change, dispute_status_initial
from gateways import get_gateway
from gateways.base import GatewayTimeout, Permanent, Retryable
from gateways.disputes import EVIDENCE_TEXT_FIELDS, EVIDENCE_TEXT_LIMIT, DisputeGateway, DisputeResult, EvidenceFile
from payments.errors import GatewayTimeoutError, GatewayUnavailableError
from payments.locks import lock_payment
from payments.models import ChangeSource
from payments.services.reported import payment_dispute_amounts_set, payment_flag_dispute

logger = logging.getLogger(__name__)
T = TypeVar("T")
D = states.DisputeStatus


def dispute_gateway(name: str | None = None) -> DisputeGateway:
    """The gateway a dispute is at, as its disputes half (both adapters implement `DisputeGateway`)."""
    return cast(DisputeGateway, get_gateway(name))


def _call(request: Callable[[], T]) -> T:
    """One dispute call, its failures as API errors.

    :raises DisputeUnexpectedState: the gateway refused (closed, submitted already, past its due date): 409.
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); repeating is safe (same key).
    """
    try:
        return request()
    except GatewayTimeout as exc:
        raise GatewayTimeoutError() from exc
    except Retryable as exc:
        raise GatewayUnavailableError() from exc
    except Permanent as exc:
        raise DisputeUnexpectedState(exc.message) from exc


# --- applying the gateway's news ----------------------------------------------------------------------
def _text_evidence(evidence: Mapping[str, str]) -> dict[str, str]:
    """The set text fields (file fields hold the gateway's file ids: kept on `DisputeEvidenceFile`)."""
    return {name: value for name, value in evidence.items() if value and name in EVIDENCE_TEXT_FIELDS}


def _news_fields(dispute: Dispute, result: DisputeResult, *, moves: bool) -> dict[str, Any]:
    """What the news changes: flags and counts only go forward; the rest follows a status move."""
    fields: dict[str, Any] = {
        "has_evidence": dispute.has_evidence or result.has_evidence,
        "submission_count": max(dispute.submission_count, result.submission_count),
        "funds_withdrawn": dispute.funds_withdrawn or result.funds_withdrawn or result.funds_reinstated,
        "funds_reinstated": dispute.funds_reinstated or result.funds_reinstated,
        "evidence_due_by": result.evidence_due_by or dispute.evidence_due_by,
        "evidence": {**dispute.evidence, **_text_evidence(result.evidence)},
        "charge_reference": dispute.charge_reference or result.charge_reference,
    }
    if moves:
        fields.update(
            amount=result.amount or dispute.amount,
            reason=result.reason or dispute.reason,
            is_charge_refundable=result.is_charge_refundable,
        )
    submitted = fields["submission_count"] > 0 or result.status in states.UNDER_REVIEW
    if dispute.evidence_submitted_at is None and submitted:
        fields["evidence_submitted_at"] = timezone.now()
    return {name: value for name, value in fields.items() if getattr(dispute, name) != value}


def _payment_amounts(payment_id: int) -> None:
    """Set what the payment's disputes hold of it (the caller holds the payment's lock)."""
    rows = list(Dispute.objects.filter(payment_id=payment_id).values_list("status", "amount", "is_charge_refundable"))
    disputed = sum(amount for status, amount, _ in rows if status in states.COUNTS_AS_DISPUTED)
    held = sum(amount for status, amount, refundable in rows if status in states.HOLDS_FUNDS and not refundable)
    payment_dispute_amounts_set(payment_id=payment_id, amount_disputed=disputed, amount_dispute_held=held)


def dispute_apply(
    *,
    result: DisputeResult,
    gateway_name: str,
    source: str,
    payment_id: int | None = None,
    actor: User | None = None,
    reason: str = "",
    evidence: Mapping[str, str] | None = None,
    submitted: bool = False,
) -> tuple[Dispute | None, bool]:
    """Store what the gateway says about a dispute (insert once, or move ours forward). Returns (row, moved).

    A new dispute needs `payment_id` (the payment it disputes); None and not stored without it. `evidence`
    (our own call's answer) replaces the stored text fields; `submitted` marks the evidence submitted.
    """
    if result.status not in D.values:
        raise ValueError(f"Unknown dispute status {result.status!r}")
    known = (
        Dispute.objects.filter(gateway_name=gateway_name, gateway_reference=result.reference)
        .values_list("pk", "payment_id")
        .first()
    )
    target = known[1] if known is not None else payment_id
    if target is None:
        return None, False
    with transaction.atomic():
        payment = lock_payment(target)
        row = known[0] if known is not None else None
        if row is None:  # every writer of a payment's disputes holds its lock: no concurrent insert of this one
            row = (
                Dispute.objects.filter(gateway_name=gateway_name, gateway_reference=result.reference)
                .values_list("pk", flat=True)
                .first()
            )
        if row is None:
            dispute = _dispute_insert(result=result, gateway_name=gateway_name, payment=payment, source=source)
            _payment_amounts(payment.pk)
            payment_flag_dispute(
                payment_id=payment.pk,
                dispute_reference=result.reference,
                reason=result.reason,
                amount=result.amount,
                currency=dispute.currency,
            )
            return dispute, True
        dispute = lock_dispute(row)
        if result.status != dispute.status and not states.can_transition(dispute.status, result.status):
            return dispute, False  # stale: a status ours cannot lead to
        fields = _news_fields(dispute, result, moves=result.status != dispute.status)
        if evidence is not None and dict(evidence) != dispute.evidence:
            fields["evidence"] = dict(evidence)
        if submitted and dispute.evidence_submitted_at is None:
            fields["evidence_submitted_at"] = timezone.now()
        if not fields and result.status == dispute.status:
            return dispute, False
        dispute_change(dispute, result.status, source=source, fields=fields, actor=actor, reason=reason)
        _payment_amounts(payment.pk)
    return dispute, True


def _dispute_insert(*, result: DisputeResult, gateway_name: str, payment: Any, source: str) -> Dispute:
    submitted = result.submission_count > 0 or result.status in states.UNDER_REVIEW
    dispute = Dispute.objects.create(
        client_id=payment.client_id,
        payment=payment,
        amount=result.amount,
        currency=(result.currency or payment.currency).lower(),
        reason=result.reason[:64],
        status=result.status,
        evidence_due_by=result.evidence_due_by,
        evidence=_text_evidence(result.evidence),
        has_evidence=result.has_evidence,
        evidence_submitted_at=timezone.now() if submitted else None,
        submission_count=result.submission_count,
        funds_withdrawn=result.funds_withdrawn or result.funds_reinstated,
        funds_reinstated=result.funds_reinstated,
        is_charge_refundable=result.is_charge_refundable,
        gateway_name=gateway_name,
        gateway_reference=result.reference,
        charge_reference=result.charge_reference,
        gateway_created_at=result.created_at,
    )
    dispute_status_initial(dispute, source=source)
    logger.warning("Dispute recorded", extra={"dispute": dispute.public_id, "payment": payment.public_id})
    return dispute


# --- evidence and acceptance (finance) -------------------------------------------------------------------
def _check_evidence_allowed(dispute: Dispute) -> None:
    """:raises DisputeUnexpectedState: closed, submitted already, or past its due date."""
    if dispute.status in states.TERMINAL:
        raise DisputeUnexpectedState(f"The dispute is {dispute.status}: it takes no more evidence.")
    if dispute.evidence_submitted_at or dispute.submission_count or dispute.status in states.UNDER_REVIEW:
        raise DisputeUnexpectedState("The evidence of this dispute was submitted already.")
    if dispute.evidence_due_by is not None and dispute.evidence_due_by <= timezone.now():
        raise DisputeUnexpectedState("The evidence of this dispute was due by " + dispute.evidence_due_by.isoformat())


def dispute_evidence_update(
    *,
    dispute: Dispute,
    evidence: Mapping[str, str],
    submit: bool,
    actor: User | None = None,
    files: Sequence[EvidenceFile] = (),
) -> Dispute:
    """Save evidence at the gateway (an empty string clears a field) and, with `submit`, send it to the bank.

    :raises DisputeUnexpectedState: closed, submitted already, past its due date (here or at the gateway): 409.
    :raises ParameterInvalid: the text fields together exceed the gateway's limit: 400.
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); nothing was applied.
    """
    with transaction.atomic():
        lock_payment(dispute.payment_id)
        locked = lock_dispute(dispute.pk)
        _check_evidence_allowed(locked)
        merged = _text_evidence({**locked.evidence, **evidence})
        total = sum(len(value) for value in merged.values())
        if total > EVIDENCE_TEXT_LIMIT:
            raise ParameterInvalid(
                f"The evidence text fields together may hold at most {EVIDENCE_TEXT_LIMIT} characters ({total}).",
                param="evidence",
            )
        locked.evidence_saves += 1
        locked.save(update_fields=["evidence_saves", "updated_at"])
        key = f"{locked.public_id}:evidence:{locked.evidence_saves}"
    gateway = dispute_gateway(locked.gateway_name)
    result = _call(
        lambda: gateway.update_dispute(
            reference=locked.gateway_reference, evidence=dict(evidence), files=files, submit=submit, idempotency_key=key
        )
    )
    applied, _ = dispute_apply(
        result=result,
        gateway_name=locked.gateway_name,
        source=ChangeSource.API,
        actor=actor,
        evidence=merged,
        submitted=submit,
    )
    if files:
        _record_files(locked, files, result)
    logger.info("Dispute evidence saved", extra={"dispute": locked.public_id, "submit": submit, "key": key})
    return applied or locked


def _record_files(dispute: Dispute, files: Sequence[EvidenceFile], result: DisputeResult) -> None:
    for item in files:
        DisputeEvidenceFile.objects.update_or_create(
            dispute=dispute,
            field=item.field,
            defaults={
                "filename": item.filename[:255],
                "content_type": item.content_type,
                "size": len(item.content),
                "sha256": hashlib.sha256(item.content).hexdigest(),
                "gateway_file_id": str(result.evidence.get(item.field) or ""),
            },
        )


def dispute_accept(*, dispute: Dispute, actor: User | None = None) -> Dispute:
    """Accept the dispute at the gateway: it is lost (an inquiry: closed) at once.

    :raises DisputeUnexpectedState: it is closed already (here or at the gateway): 409.
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); repeating is safe (same key).
    """
    with transaction.atomic():
        lock_payment(dispute.payment_id)
        locked = lock_dispute(dispute.pk)
        if locked.status in states.TERMINAL:
            raise DisputeUnexpectedState(f"The dispute is {locked.status} already.")
    gateway = dispute_gateway(locked.gateway_name)
    key = f"{locked.public_id}:accept"
    result = _call(lambda: gateway.close_dispute(reference=locked.gateway_reference, idempotency_key=key))
    applied, _ = dispute_apply(
        result=result, gateway_name=locked.gateway_name, source=ChangeSource.API, actor=actor, reason="accepted"
    )
    logger.info("Dispute accepted", extra={"dispute": locked.public_id})
    return applied or locked
