"""Writes of the back office: the hash-chained staff action log and four-eyes approval requests.

Every staff action appends one `StaffAction` row whose `hash` is the SHA-256 of its content plus the
previous row's hash. Appends are serialized by a PostgreSQL advisory lock held until commit, so two
staff members acting at the same moment can never chain onto the same row.

Lock order, everywhere: approval request, then payment (taken by the owning service), then the chain.
"""

import hashlib
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from audit.errors import ApprovalBySelf, ApprovalNotAllowed, ApprovalNotPending
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.selectors import payment_refundable_amount, refund_approval_limit
from config.errors import ApplicationError
from payments.errors import AmountTooLarge
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment
from payments.money import format_amount
from payments.recovery import payment_is_stuck
from payments.services import payment_override_status
from refunds.models import Refund
from refunds.services import lock_refund, refund_create
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Key of the advisory lock that serializes appends to the chain (any constant unique to this use).
CHAIN_LOCK_KEY = 0x5AFF_AC71
HASHED_FIELDS = (
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "reason",
    "before",
    "after",
    "remote_addr",
    "created_at",
)


# --- the hash chain ------------------------------------------------------------------------------
def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def staff_action_hash(*, content: dict[str, Any], previous_hash: str) -> str:
    """SHA-256 (hex) of a row's content, in canonical JSON, chained to the previous row's hash."""
    payload = dict(content)
    payload["created_at"] = payload["created_at"].isoformat()
    payload["previous_hash"] = previous_hash
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    else:  # SQLite (local runs) serializes writers on its own
        StaffAction.objects.select_for_update().order_by("-id").first()


def staff_action_record(
    *,
    actor: User,
    action: str,
    object_type: str,
    object_id: str,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> StaffAction:
    """Append a staff action to the hash chain (in the caller's transaction, when there is one)."""
    content: dict[str, Any] = {
        "actor_id": actor.pk,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "reason": reason,
        # stored as JSON: hash exactly what the database will give back
        "before": json.loads(json.dumps(before or {}, default=str)),
        "after": json.loads(json.dumps(after or {}, default=str)),
        "remote_addr": str(ipaddress.ip_address(remote_addr)) if remote_addr else None,
    }
    with transaction.atomic():
        _lock_chain()
        previous_hash = StaffAction.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        content["created_at"] = timezone.now()
        return StaffAction.objects.create(
            **content, previous_hash=previous_hash, hash=staff_action_hash(content=content, previous_hash=previous_hash)
        )


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold."""

    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"StaffAction {self.row_id}: {self.problem}"


def audit_verify() -> ChainBreak | None:
    """Walk the chain in id order (streamed); return the first row altered or after a removed row, or None."""
    expected_previous = GENESIS_HASH
    previous_id: int | None = None
    rows = StaffAction.objects.order_by("id").values("id", "previous_hash", "hash", *HASHED_FIELDS)
    for row in rows.iterator(chunk_size=2000):
        if row["previous_hash"] != expected_previous:
            if previous_id is None:
                problem = "previous_hash is not the start of the chain: the rows before it were removed"
            elif StaffAction.objects.filter(hash=row["previous_hash"]).exists():
                problem = f"chained to a row other than {previous_id}: the rows were reordered"
            else:
                problem = (
                    f"previous_hash matches no row: a row between {previous_id} and {row['id']} "
                    f"was removed, or {previous_id} was rewritten"
                )
            return ChainBreak(row_id=row["id"], problem=problem)
        content = {field: row[field] for field in HASHED_FIELDS}
        if staff_action_hash(content=content, previous_hash=row["previous_hash"]) != row["hash"]:
            return ChainBreak(row_id=row["id"], problem="altered: its content does not match its hash")
        expected_previous = row["hash"]
        previous_id = row["id"]
    return None


# --- staff refunds and overrides -----------------------------------------------------------------
def staff_refund_request(
    *,
    payment: Payment,
    amount: int,
    refund_reason: str,
    reason: str,
    actor: User,
    remote_addr: str | None = None,
) -> Refund | ApprovalRequest:
    """Refund now when the amount is within the currency's approval limit; otherwise ask a second person.

    :raises ValueError: the reason is empty.
    :raises AmountTooLarge: more than what is left to refund.
    :raises PaymentUnexpectedState: the payment cannot be refunded.
    """
    if not reason.strip():
        raise ValueError("A staff refund needs a reason.")
    if amount > refund_approval_limit(currency=payment.currency):
        remaining = payment_refundable_amount(payment=payment)
        if amount > remaining:
            left = format_amount(max(remaining, 0), payment.currency)
            raise AmountTooLarge(f"amount exceeds what is left to refund ({remaining}, {left}).", param="amount")
        return approval_request_create(
            kind="refund",
            object_type="payment",
            object_id=payment.public_id,
            params={"amount": amount, "currency": payment.currency, "refund_reason": refund_reason},
            reason=reason,
            requested_by=actor,
            remote_addr=remote_addr,
        )
    with transaction.atomic():
        refund = refund_create(
            payment=payment, requested_by=actor, amount=amount, reason=refund_reason, source=ChangeSource.ADMIN
        )
        staff_action_record(
            actor=actor,
            action="refund",
            object_type="payment",
            object_id=payment.public_id,
            reason=reason,
            before={"amount_refunded": payment.amount_refunded},
            after={"refund": refund.public_id, "amount": amount, "currency": refund.currency, "status": refund.status},
            remote_addr=remote_addr,
        )
    return refund


def staff_override_request(
    *, payment: Payment, to_status: str, reason: str, actor: User, remote_addr: str | None = None
) -> ApprovalRequest:
    """Ask for a status override; it runs only once another staff member approves it.

    :raises ValueError: the reason is empty.
    """
    return approval_request_create(
        kind="status_override",
        object_type="payment",
        object_id=payment.public_id,
        params={"from_status": payment.status, "to_status": to_status},
        reason=reason,
        requested_by=actor,
        remote_addr=remote_addr,
    )


# --- four-eyes -----------------------------------------------------------------------------------
def approval_request_create(
    *,
    kind: str,
    object_type: str,
    object_id: str,
    params: dict[str, Any],
    reason: str,
    requested_by: User,
    remote_addr: str | None = None,
) -> ApprovalRequest:
    """Open a pending request and record who asked for it.

    :raises ValueError: the reason is empty.
    """
    if not reason.strip():
        raise ValueError("A request needs a reason.")
    with transaction.atomic():
        request = ApprovalRequest.objects.create(
            kind=kind,
            object_type=object_type,
            object_id=object_id,
            params=params,
            reason=reason,
            requested_by=requested_by,
        )
        staff_action_record(
            actor=requested_by,
            action=f"request_{kind}",
            object_type=object_type,
            object_id=object_id,
            reason=reason,
            after={"approval_request": request.pk, **params},
            remote_addr=remote_addr,
        )
    return request


def _lock_pending(request_id: int, decider: User) -> ApprovalRequest:
    request = ApprovalRequest.objects.select_for_update(of=("self",)).get(pk=request_id)
    if request.status != ApprovalStatus.PENDING:
        raise ApprovalNotPending()
    if request.requested_by_id == decider.pk:
        raise ApprovalBySelf()
    if not decider.has_perm("audit.approve_request"):
        raise ApprovalNotAllowed()
    if request.kind == "refund" and not decider.has_perm("refunds.approve_refund"):
        raise ApprovalNotAllowed()
    return request


def _run_approved(request: ApprovalRequest, approver: User) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Call the owning service; return (result, before, after)."""
    payment = Payment.objects.get(public_id=request.object_id)
    if request.kind == "refund":
        if request.params["currency"] != payment.currency:
            raise AmountTooLarge("The request's currency is not the payment's.", param="currency")
        refund = refund_create(
            payment=payment,
            requested_by=request.requested_by,
            amount=request.params["amount"],
            reason=request.params.get("refund_reason", ""),
            source=ChangeSource.ADMIN,
        )
        result = f"refund {refund.public_id} created ({format_amount(refund.amount, refund.currency)})"
        after = {"refund": refund.public_id, "amount": refund.amount, "currency": refund.currency}
        return result, {"amount_refunded": payment.amount_refunded}, after
    if request.kind == "status_override":
        before = {"status": payment.status}
        payment = payment_override_status(
            payment_id=payment.pk, to_status=request.params["to_status"], actor=approver, reason=request.reason
        )
        return f"status {before['status']} -> {payment.status}", before, {"status": payment.status}
    raise ValueError(f"Unknown request kind {request.kind!r}")


def approval_request_approve(
    *, request_id: int, approver: User, reason: str = "", remote_addr: str | None = None
) -> ApprovalRequest:
    """Approve another staff member's request and run the owning service, all in one transaction.

    When the service refuses (the payment moved on meanwhile), the request ends `failed` with its answer.

    :raises ApprovalNotPending: already decided.
    :raises ApprovalBySelf: the approver asked for it.
    :raises ApprovalNotAllowed: the approver lacks `audit.approve_request`.
    """
    with transaction.atomic():
        request = _lock_pending(request_id, approver)
        request.decided_by = approver
        request.decided_at = timezone.now()
        request.decision_reason = reason
        outcome: tuple[str, dict[str, Any], dict[str, Any]] | None = None
        try:
            with transaction.atomic():
                outcome = _run_approved(request, approver)
        except (ApplicationError, ValueError) as exc:
            request.status = ApprovalStatus.FAILED
            request.result = str(exc)
        else:
            request.status = ApprovalStatus.APPROVED
            request.result = outcome[0]
        request.save()
        staff_action_record(
            actor=approver,
            action="approve",
            object_type="approval_request",
            object_id=str(request.pk),
            reason=reason,
            before={"status": ApprovalStatus.PENDING},
            after={"status": request.status, "kind": request.kind, "payment": request.object_id},
            remote_addr=remote_addr,
        )
        staff_action_record(
            actor=approver,
            action=request.kind if outcome else f"{request.kind}_failed",
            object_type=request.object_type,
            object_id=request.object_id,
            reason=request.reason,
            before=outcome[1] if outcome else {},
            after={**(outcome[2] if outcome else {"error": request.result}), "approval_request": request.pk},
            remote_addr=remote_addr,
        )
    logger.info("Approval request decided", extra={"request": request.pk, "status": request.status})
    return request


def approval_request_reject(
    *, request_id: int, approver: User, reason: str = "", remote_addr: str | None = None
) -> ApprovalRequest:
    """Reject another staff member's request; nothing runs.

    :raises ApprovalNotPending, ApprovalBySelf, ApprovalNotAllowed: as for approval.
    """
    with transaction.atomic():
        request = _lock_pending(request_id, approver)
        request.status = ApprovalStatus.REJECTED
        request.decided_by = approver
        request.decided_at = timezone.now()
        request.decision_reason = reason
        request.save()
        staff_action_record(
            actor=approver,
            action="reject",
            object_type="approval_request",
            object_id=str(request.pk),
            reason=reason,
            before={"status": ApprovalStatus.PENDING},
            after={"status": request.status, "kind": request.kind, "payment": request.object_id},
            remote_addr=remote_addr,
        )
    return request


# --- retrying stuck operations (staff actions) -----------------------------------------------------
def _clear_attention_and_record(
    obj: Payment | Refund, *, object_type: str, before: dict[str, Any], task: str, actor: Any, remote_addr: str | None
) -> None:
    """Clear the flag with save() (so auditlog sees it) and record the retry as a staff action."""
    obj.needs_attention = False
    obj.save(update_fields=["needs_attention", "updated_at"])
    staff_action_record(
        actor=actor,
        action="retry_stuck_operation",
        object_type=object_type,
        object_id=obj.public_id,
        before=before,
        after={"needs_attention": False, "enqueued": task},
        remote_addr=remote_addr,
    )


def payment_retry_stuck(*, payment_id: int, actor: Any, remote_addr: str | None) -> bool:
    """Clear `needs_attention`, record the staff action, and enqueue `settle_payment` after commit.

    The task (not `payment_settle` inline) keeps gateway I/O out of the request and keeps the
    retry/backoff bound: if retries run out again the payment is flagged again. Returns False, doing
    nothing, when the payment has no operation to finish.
    """
    from payments.tasks import settle_payment

    with transaction.atomic():
        payment = lock_payment(payment_id)
        if not payment_is_stuck(payment):
            return False
        before = {"needs_attention": payment.needs_attention, "pending_operation": payment.pending_operation}
        _clear_attention_and_record(
            payment, object_type="payment", before=before, task="settle_payment", actor=actor, remote_addr=remote_addr
        )
        transaction.on_commit(lambda: settle_payment.delay(payment_id=payment_id))
    return True


def refund_retry_stuck(*, refund_id: int, actor: Any, remote_addr: str | None) -> bool:
    """Clear `needs_attention` on a pending refund, record the staff action, enqueue `submit_refund` on commit.

    Submitting again reuses the key `re_X:create`, so the gateway never refunds twice. Returns False,
    doing nothing, when the refund is no longer pending.
    """
    from refunds.tasks import submit_refund

    with transaction.atomic():
        refund = lock_refund(refund_id)
        if refund.status != RefundStatus.PENDING:
            return False
        before = {"needs_attention": refund.needs_attention, "attempts": refund.attempts}
        _clear_attention_and_record(
            refund, object_type="refund", before=before, task="submit_refund", actor=actor, remote_addr=remote_addr
        )
        transaction.on_commit(lambda: submit_refund.delay(refund_id=refund_id))
    return True
