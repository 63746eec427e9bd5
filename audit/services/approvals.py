"""Four-eyes approval requests: open, approve (run the owning app's service through its kind), reject."""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.approvals import ApprovalOutcome, approval_kind
from audit.errors import ApprovalBySelf, ApprovalNotAllowed, ApprovalNotPending
from audit.locks import lock_approval_request
from audit.models import ApprovalRequest, ApprovalStatus
from audit.services.chain import staff_action_record
from config.api.errors import ApplicationError

logger = logging.getLogger(__name__)


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
    request = lock_approval_request(request_id)
    if request.status != ApprovalStatus.PENDING:
        raise ApprovalNotPending()
    if request.requested_by_id == decider.pk:
        raise ApprovalBySelf()
    if not decider.has_perm("audit.approve_request"):
        raise ApprovalNotAllowed()
    permission = approval_kind(request.kind).approver_permission
    if permission and not decider.has_perm(permission):
        raise ApprovalNotAllowed()
    return request


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
        outcome: ApprovalOutcome | None = None
        try:
            with transaction.atomic():
                outcome = approval_kind(request.kind).run(request, approver)
        except (ApplicationError, ValueError) as exc:
            request.status = ApprovalStatus.FAILED
            request.result = str(exc)
        else:
            request.status = ApprovalStatus.APPROVED
            request.result = outcome.result
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
            before=outcome.before if outcome else {},
            after={**(outcome.after if outcome else {"error": request.result}), "approval_request": request.pk},
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


def approval_followup(
    *,
    work: Callable[[], object],
    failures: tuple[type[Exception], ...],
    approver: User,
    action: str,
    object_type: str,
    object_id: str,
    reason: str,
    approval_request: int,
) -> None:
    """Run an approved action's gateway work right after the approval commits.

    An approval runs its kind inside a transaction, and no transaction may be held across a gateway call, so a
    kind that calls the gateway checks the object and hands the call here. A failure (one of `failures`) is
    logged and kept in the staff log as `<action>_failed`; the object is left as it was, and a new request
    (the same gateway keys) can finish it.
    """

    def run() -> None:
        try:
            work()
        except failures as exc:
            logger.exception("An approved action failed", extra={"action": action, "object": object_id})
            staff_action_record(
                actor=approver,
                action=f"{action}_failed",
                object_type=object_type,
                object_id=object_id,
                reason=reason,
                after={"error": str(exc), "approval_request": approval_request},
            )

    transaction.on_commit(run)
