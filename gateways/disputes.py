"""The disputes half of the gateway protocol (issue #19): chargebacks as Stripe has them (a Dispute object).

A customer's bank disputes a charge; the gateway withdraws the amount (and a fee) from the shop's balance and
gives the shop until `evidence_due_by` to answer with evidence. Submitted evidence goes to the bank; the
dispute ends `won` (funds reinstated) or `lost`. Inquiries (`warning_*`) move no money. Plain dataclasses in
and out, integer minor units, typed errors (`gateways.base`); every call that changes something takes an
`idempotency_key` derived from our own ids (`dp_X:evidence:1`).

`StripeGateway` and `SimulatorGateway` implement `DisputeGateway` beside `Gateway`. The simulator disputes
a charge paid with `pm_card_createDispute` moments after it succeeds (reason `fraudulent`, evidence due in
7 days) and keeps the Stripe-shaped events it would send (`charge.dispute.created`, then
`charge.dispute.funds_withdrawn`) for `SimulatorGateway.pending_dispute_events()` to hand over, signed
delivery being the caller's (`webhooks.test_helpers.deliver_event`); `SimulatorGateway.close_dispute_as(
reference=, outcome="won"|"lost")` decides a submitted (or any open) dispute as the bank would and returns its
events (`charge.dispute.closed`, and `charge.dispute.funds_reinstated` when won).
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateways.base import Permanent

# Dispute statuses, as Stripe names them.
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
)
OPEN_STATUSES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")
CLOSED_STATUSES = ("warning_closed", "won", "lost")

# Stripe's dispute reasons.
DISPUTE_REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)

# Stripe's evidence fields: free text (at most 20,000 characters together) ...
EVIDENCE_TEXT_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_tracking_number",
    "uncategorized_text",
)
# ... and files (uploaded through Stripe's Files API with purpose `dispute_evidence`; the field holds the file_ id).
EVIDENCE_FILE_FIELDS = (
    "cancellation_policy",
    "customer_communication",
    "customer_signature",
    "duplicate_charge_documentation",
    "receipt",
    "refund_policy",
    "service_documentation",
    "shipping_documentation",
    "uncategorized_file",
)
EVIDENCE_TEXT_LIMIT = 20_000  # Stripe: the text fields together
EVIDENCE_FILE_TYPES = ("application/pdf", "image/jpeg", "image/png")
EVIDENCE_FILE_LIMIT = 5 * 1024 * 1024  # bytes, per file (Stripe: 5 MB for dispute evidence)


@dataclass(frozen=True)
class EvidenceFile:
    """A file of evidence to upload (Stripe: Files API, purpose `dispute_evidence`) into `field`."""

    field: str  # one of EVIDENCE_FILE_FIELDS
    filename: str
    content_type: str  # one of EVIDENCE_FILE_TYPES
    content: bytes


@dataclass(frozen=True)
class DisputeResult:
    """What the gateway says about a dispute (Stripe: a Dispute)."""

    reference: str  # Stripe: du_... (dp_... for some payment methods)
    intent_reference: str  # the payment intent of the disputed charge (Stripe: payment_intent)
    charge_reference: str  # Stripe: ch_...
    amount: int  # minor units
    currency: str  # lowercase ISO 4217
    reason: str  # one of DISPUTE_REASONS
    status: str  # one of DISPUTE_STATUSES
    evidence_due_by: datetime | None = None  # Stripe: evidence_details.due_by
    has_evidence: bool = False  # Stripe: evidence_details.has_evidence
    submission_count: int = 0  # Stripe: evidence_details.submission_count
    is_charge_refundable: bool = False  # Stripe: the disputed charge can still be refunded (inquiries)
    funds_withdrawn: bool = False  # a balance transaction took the amount (Stripe: balance_transactions)
    funds_reinstated: bool = False  # a later one gave it back (won)
    evidence: Mapping[str, str] = field(default_factory=dict)  # text fields and file fields' file_ ids
    created_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class DisputeGateway(Protocol):
    """What the disputes app needs from the gateway."""

    name: str

    def retrieve_dispute(self, *, reference: str) -> DisputeResult:
        """:raises Permanent: no such dispute."""
        ...

    def list_disputes(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[DisputeResult]:
        """Every dispute created in [created_gte, created_lt), any status, paging as needed (reconciliation)."""
        ...

    def update_dispute(
        self,
        *,
        reference: str,
        evidence: Mapping[str, str],
        files: Sequence[EvidenceFile],
        submit: bool,
        idempotency_key: str,
    ) -> DisputeResult:
        """Save evidence (text fields; files uploaded first, their ids put in their fields); `submit` sends it.

        Stripe: `Dispute.modify(evidence=..., submit=...)`, files through `File.create(purpose=
        "dispute_evidence")`. Submitting moves `needs_response` to `under_review` (inquiries:
        `warning_needs_response` to `warning_under_review`).
        :raises Permanent: the dispute is closed, submitted already, or past its due date (Stripe refuses).
        """
        ...

    def close_dispute(self, *, reference: str, idempotency_key: str) -> DisputeResult:
        """Accept the dispute (Stripe: `Dispute.close`): it is `lost` (an inquiry: `warning_closed`) at once.

        :raises Permanent: the dispute is closed already.
        """
        ...


def check_evidence(*, evidence: Mapping[str, str], files: Sequence[EvidenceFile]) -> None:
    """Refuse evidence Stripe would refuse, before anything is uploaded (both gateways call it first).

    `evidence` keys are EVIDENCE_TEXT_FIELDS or EVIDENCE_FILE_FIELDS (a file_ id uploaded earlier); "" unsets a
    field. Files go into EVIDENCE_FILE_FIELDS, one per field, of EVIDENCE_FILE_TYPES, at most EVIDENCE_FILE_LIMIT.
    :raises Permanent: an unknown field, too much text, or a file of the wrong field, type or size.
    """
    unknown = sorted(set(evidence) - set(EVIDENCE_TEXT_FIELDS) - set(EVIDENCE_FILE_FIELDS))
    if unknown:
        raise Permanent(f"Received unknown evidence fields: {', '.join(unknown)}.", code="parameter_unknown")
    text = sum(len(value) for name, value in evidence.items() if name in EVIDENCE_TEXT_FIELDS)
    if text > EVIDENCE_TEXT_LIMIT:
        raise Permanent(
            f"The evidence text fields hold {text} characters together; at most {EVIDENCE_TEXT_LIMIT} are allowed.",
            code="parameter_invalid",
        )
    seen: set[str] = set()
    for item in files:
        if item.field not in EVIDENCE_FILE_FIELDS or item.field in seen or item.field in evidence:
            raise Permanent(f"A file cannot go into the evidence field {item.field!r}.", code="parameter_invalid")
        if item.content_type not in EVIDENCE_FILE_TYPES:
            raise Permanent(f"Files of type {item.content_type!r} are not accepted as evidence.", code="file_invalid")
        if not 0 < len(item.content) <= EVIDENCE_FILE_LIMIT:
            raise Permanent(f"The file {item.filename!r} is empty or larger than 5 MB.", code="file_invalid")
        seen.add(item.field)


def dispute_event(event_id: str, event_type: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    """A Stripe-shaped `charge.dispute.*` event as a webhook delivers it (what the simulator hands over)."""
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "api_version": "2024-06-20",
        "livemode": False,
        "data": {"object": obj},
    }
