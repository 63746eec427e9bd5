"""The API's JSON shape of a dispute (events carry the same, without the evidence: it holds personal data)."""

from typing import Any

from config.api.rendering import iso
from disputes.models import Dispute


def render_dispute(dispute: Dispute) -> dict[str, Any]:
    return {
        "id": dispute.public_id,
        "object": "dispute",
        "payment": dispute.payment.public_id,
        "amount": dispute.amount,
        "currency": dispute.currency,
        "reason": dispute.reason or None,
        "status": dispute.status,
        "evidence_due_by": iso(dispute.evidence_due_by),
        "has_evidence": dispute.has_evidence,
        "evidence_submitted_at": iso(dispute.evidence_submitted_at),
        "submission_count": dispute.submission_count,
        "evidence": dict(dispute.evidence),
        "funds_withdrawn": dispute.funds_withdrawn,
        "funds_reinstated": dispute.funds_reinstated,
        "is_charge_refundable": dispute.is_charge_refundable,
        "gateway_reference": dispute.gateway_reference,
        "created": iso(dispute.created_at),
        "updated": iso(dispute.updated_at),
    }


def dispute_event_data(dispute: Dispute) -> dict[str, Any]:
    """The dispute as an event carries it: no evidence (names, e-mail addresses, addresses)."""
    shown = render_dispute(dispute)
    del shown["evidence"]
    return shown
