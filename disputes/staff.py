"""Staff's writes to disputes in the back office: save or submit evidence, accept a dispute (close it as lost).

Each goes through the disputes services (`dispute_evidence_update`, `dispute_accept`), which call the gateway
outside any transaction with keys derived from our ids, then the staff log is written. Accepting a dispute
above the currency's refund approval limit (the setting `refunds.selectors.refund_approval_limit` reads:
giving the money up is a refund's size of decision) waits for a second person: an approval request of the
kind `dispute_accept`, whose run calls the same service once the approval commits. The staff log keeps which
evidence fields and files were sent, never their values (names, addresses: personal data in a log that is
never erased).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from audit.approvals import ApprovalOutcome
from audit.models import ApprovalRequest
from audit.services import approval_followup, approval_request_create, staff_action_record
from config.api.errors import ApplicationError
from disputes import states
from disputes.errors import DisputeUnexpectedState, ParameterInvalid
from disputes.models import Dispute
from disputes.services import dispute_accept, dispute_evidence_update
from gateways.base import GatewayError
from gateways.disputes import EvidenceFile
from payments.money import format_amount

logger = logging.getLogger(__name__)
ACCEPT_KIND = "dispute_accept"


def approval_limit(*, currency: str) -> int:
    """The largest dispute (minor units) staff may accept without a second person: the refund approval limit.

    Read from the setting `refunds.selectors.refund_approval_limit` reads (`BACKOFFICE_REFUND_APPROVAL_LIMIT`):
    disputes may not import refunds (pyproject.toml's import contracts).
    """
    limits: dict[str, int] = settings.BACKOFFICE_REFUND_APPROVAL_LIMIT
    return limits.get(currency.lower(), limits["default"])


def evidence_state(dispute: Dispute) -> str:
    """ "submitted", "draft" (something saved at the gateway) or "none"."""
    if dispute.evidence_submitted_at or dispute.submission_count or dispute.status in states.UNDER_REVIEW:
        return "submitted"
    if dispute.has_evidence or dispute.evidence:
        return "draft"
    return "none"


def evidence_closed_reason(dispute: Dispute) -> str:
    """Why the dispute takes no more evidence ("" when it still does): the service's own checks, worded."""
    if dispute.status in states.TERMINAL:
        return f"The dispute is closed ({dispute.get_status_display()}): it takes no more evidence."
    if evidence_state(dispute) == "submitted":
        when = dispute.evidence_submitted_at
        told = f" on {timezone.localtime(when):%Y-%m-%d %H:%M}" if when else ""
        return f"The evidence was submitted to the bank{told}: it can no longer be changed."
    if dispute.evidence_due_by is not None and dispute.evidence_due_by <= timezone.now():
        return (
            f"The evidence was due by {timezone.localtime(dispute.evidence_due_by):%Y-%m-%d %H:%M}: "
            "the bank takes no more evidence."
        )
    return ""


def _snapshot(dispute: Dispute) -> dict[str, Any]:
    return {
        "status": dispute.status,
        "evidence": evidence_state(dispute),
        "fields": sorted(dispute.evidence),
        "amount": dispute.amount,
        "currency": dispute.currency,
    }


def dispute_evidence_save(
    *,
    dispute: Dispute,
    evidence: Mapping[str, str],
    files: Sequence[EvidenceFile] = (),
    submit: bool,
    actor: User,
    remote_addr: str | None = None,
) -> Dispute:
    """Save evidence as a draft at the gateway or, with `submit`, send it to the bank (once); audited.

    `evidence` holds the text fields that changed ("" clears one); `files` go into their file fields.

    :raises DisputeUnexpectedState: closed, submitted already, or past its due date (409).
    :raises ParameterInvalid: too much text (400).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); nothing was applied.
    """
    before = _snapshot(dispute)
    done = dispute_evidence_update(dispute=dispute, evidence=evidence, submit=submit, actor=actor, files=files)
    done = Dispute.objects.select_related("payment").get(pk=done.pk)
    after = {**_snapshot(done), "changed": sorted(evidence), "files": sorted(item.field for item in files)}
    staff_action_record(
        actor=actor,
        action="submit_dispute_evidence" if submit else "save_dispute_evidence",
        object_type="dispute",
        object_id=done.public_id,
        reason="Evidence submitted to the bank" if submit else "Evidence draft saved",
        before=before,
        after=after,
        remote_addr=remote_addr,
    )
    return done


def dispute_accept_request(
    *, dispute: Dispute, actor: User, reason: str, remote_addr: str | None = None
) -> Dispute | ApprovalRequest:
    """Accept a dispute (close it as lost): at once within the currency's refund approval limit, otherwise
    an approval request that another staff member must approve (returned as such).

    :raises ValueError: the reason is empty.
    :raises DisputeUnexpectedState: the dispute is closed already (409).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); repeating is safe.
    """
    if not reason.strip():
        raise ValueError("Accepting a dispute needs a reason.")
    if dispute.status in states.TERMINAL:
        raise DisputeUnexpectedState(f"The dispute is {dispute.status} already.")
    if dispute.amount > approval_limit(currency=dispute.currency):
        return approval_request_create(
            kind=ACCEPT_KIND,
            object_type="dispute",
            object_id=dispute.public_id,
            params={"amount": dispute.amount, "currency": dispute.currency},
            reason=reason,
            requested_by=actor,
            remote_addr=remote_addr,
        )
    return _accept(dispute_id=dispute.pk, actor=actor, reason=reason, remote_addr=remote_addr)


def _accept(
    *, dispute_id: int, actor: User, reason: str, remote_addr: str | None, approval_request: int | None = None
) -> Dispute:
    dispute = Dispute.objects.select_related("payment").get(pk=dispute_id)
    before = _snapshot(dispute)
    dispute_accept(dispute=dispute, actor=actor)
    done = Dispute.objects.select_related("payment").get(pk=dispute_id)
    after = _snapshot(done)
    if approval_request is not None:
        after["approval_request"] = approval_request
    staff_action_record(
        actor=actor,
        action="accept_dispute",
        object_type="dispute",
        object_id=done.public_id,
        reason=reason,
        before=before,
        after=after,
        remote_addr=remote_addr,
    )
    logger.info("Dispute accepted by staff", extra={"dispute": done.public_id, "status": done.status})
    return done


def run_approved_dispute_accept(request: ApprovalRequest, approver: User) -> ApprovalOutcome:
    """The approval kind `dispute_accept`.

    The approval runs its kind inside a transaction and no transaction is held across a gateway call: the
    dispute is checked here (a request for a dispute closed meanwhile fails), and the disputes service is
    called right after the approval commits (`transaction.on_commit`), its outcome in the staff log.

    :raises DisputeUnexpectedState: the dispute was closed meanwhile.
    :raises ParameterInvalid: the dispute's currency is not the request's.
    """
    dispute = Dispute.objects.get(public_id=request.object_id)
    if dispute.status in states.TERMINAL:
        raise DisputeUnexpectedState(f"The dispute is {dispute.status} already.")
    if dispute.currency != request.params["currency"]:
        raise ParameterInvalid("The request's currency is not the dispute's.", param="currency")
    approval_followup(
        work=lambda: _accept(
            dispute_id=dispute.pk,
            actor=approver,
            reason=request.reason,
            remote_addr=None,
            approval_request=request.pk,
        ),
        failures=(ApplicationError, GatewayError),
        approver=approver,
        action="accept_dispute",
        object_type="dispute",
        object_id=dispute.public_id,
        reason=request.reason,
        approval_request=request.pk,
    )
    return ApprovalOutcome(
        result=f"dispute {dispute.public_id} sent to the gateway to be accepted (lost)",
        before={"status": dispute.status, "amount": dispute.amount, "currency": dispute.currency},
        after={"status": "lost (at the gateway, after approval)"},
    )


def summarize_dispute_accept(params: dict[str, Any]) -> str:
    return f"accept a dispute (lose {format_amount(params['amount'], params['currency'])})"
