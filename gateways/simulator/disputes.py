"""The simulator's disputes engine: Stripe-shaped Dispute objects and their `charge.dispute.*` events.

Pure functions on plain records (a Dispute as Stripe's API shows it, Unix seconds), with no store access:
`gateways.simulator.gateway` reads the records, lets this module decide, and writes what it returns in one
compare-and-set step. Disputes run on the wall clock (`time.time()`, so `time_machine` moves it in tests),
not on the billing test clocks.

- `pm_card_createDispute` (Stripe's 4000000000000259): the charge succeeds and is disputed at once as
  `fraudulent`, `needs_response`, evidence due in 7 days; the amount and a fee of 1500 minor units are withdrawn
  (`charge.dispute.created`, then `charge.dispute.funds_withdrawn`).
- `pm_card_createDisputeInquiry` (Stripe's 4000000000001976): an inquiry, `warning_needs_response`, reason
  `general`; no money moves and the charge can still be refunded (`charge.dispute.created` only).
- Evidence and submission (`charge.dispute.updated`), acceptance (`charge.dispute.closed`: lost, or
  warning_closed for an inquiry), and the bank's decision (`decide`: won with the amount reinstated, or lost).
"""

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from gateways.base import Permanent
from gateways.disputes import (
    CLOSED_STATUSES,
    EVIDENCE_FILE_FIELDS,
    EVIDENCE_TEXT_FIELDS,
    EvidenceFile,
    dispute_event,
)

DISPUTE_TOKENS = {"pm_card_createDispute": ("visa", "0259", "credit")}
INQUIRY_TOKENS = {"pm_card_createDisputeInquiry": ("visa", "1976", "credit")}
DISPUTE_INDEX = "disputes-by-created"
EVENT_QUEUE = "dispute-events"  # a list of events to hand over (pending_dispute_events), oldest first
EVIDENCE_DAYS = 7
DISPUTE_FEE = 1500  # Stripe's dispute fee, in minor units of the charge's currency (as Stripe charges $15)
_DAY = 86_400
_SUBMITTED = {"needs_response": "under_review", "warning_needs_response": "warning_under_review"}
_INQUIRIES = {"warning_needs_response", "warning_under_review", "warning_closed"}


def new_id(prefix: str) -> str:
    return f"{prefix}_sim_{secrets.token_hex(12)}"


def charge_reference(intent_reference: str) -> str:
    """The charge of a simulated intent (one charge per intent): pi_sim_X -> ch_sim_X."""
    return "ch_" + intent_reference.removeprefix("pi_")


def is_disputed(token: str) -> bool:
    return token in DISPUTE_TOKENS or token in INQUIRY_TOKENS


def _event(event_type: str, obj: dict[str, Any], now: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    event = dispute_event(new_id("evt"), event_type, now, json.loads(json.dumps(obj)))
    if previous is not None:
        event["data"]["previous_attributes"] = previous
    return event


def _balance_transaction(dispute: dict[str, Any], amount: int, fee: int, now: int) -> dict[str, Any]:
    withdrawal = amount < 0
    return {
        "id": new_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "currency": dispute["currency"],
        "fee": fee,
        "net": amount - fee,
        "type": "adjustment",
        "reporting_category": "dispute" if withdrawal else "dispute_reversal",
        "description": f"Chargeback {'withdrawal' if withdrawal else 'reversal'} for {dispute['charge']}",
        "source": dispute["id"],
        "status": "available",
        "created": now,
        "available_on": now,
    }


def new_dispute(
    *, intent_reference: str, amount: int, currency: str, token: str, now: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dispute a test card's successful charge gets at once, and its events in order."""
    inquiry = token in INQUIRY_TOKENS
    dispute: dict[str, Any] = {
        "id": new_id("du"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_reference(intent_reference),
        "created": now,
        "currency": currency,
        "evidence": dict.fromkeys((*EVIDENCE_TEXT_FIELDS, *EVIDENCE_FILE_FIELDS)),
        "evidence_details": {
            "due_by": now + EVIDENCE_DAYS * _DAY,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_reference,
        "reason": "general" if inquiry else "fraudulent",
        "status": "warning_needs_response" if inquiry else "needs_response",
    }
    events = [_event("charge.dispute.created", dispute, now)]
    if not inquiry:
        dispute["balance_transactions"] = [_balance_transaction(dispute, -amount, DISPUTE_FEE, now)]
        events.append(_event("charge.dispute.funds_withdrawn", dispute, now))
    return dispute, events


def load(record: str, reference: str) -> dict[str, Any]:
    if not record:
        raise Permanent(f"No such dispute: '{reference}'", code="resource_missing")
    dispute: dict[str, Any] = json.loads(record)
    return dispute


def _open(dispute: dict[str, Any]) -> None:
    if dispute["status"] in CLOSED_STATUSES:
        raise Permanent(f"This dispute is already closed ({dispute['status']}).", code="dispute_closed")


def file_record(item: EvidenceFile, now: int) -> dict[str, Any]:
    """A file "uploaded" for evidence: what Stripe's File shows, and the content's sha256 (not the content)."""
    return {
        "id": new_id("file"),
        "object": "file",
        "purpose": "dispute_evidence",
        "filename": item.filename,
        "size": len(item.content),
        "type": item.content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg"),
        "sha256": hashlib.sha256(item.content).hexdigest(),
        "created": now,
    }


def update(
    dispute: dict[str, Any], *, evidence: Mapping[str, str], file_ids: Mapping[str, str], submit: bool, now: int
) -> list[dict[str, Any]]:
    """Save evidence into `dispute` ("" unsets a field) and, with `submit`, send it; returns the events.

    :raises Permanent: closed, submitted already, or past its due date.
    """
    _open(dispute)
    if dispute["status"] not in _SUBMITTED:
        raise Permanent("The evidence of this dispute has been submitted already.", code="dispute_submitted")
    if now > dispute["evidence_details"]["due_by"]:
        raise Permanent("The evidence for this dispute was due already.", code="dispute_past_due")
    before = json.loads(json.dumps(dispute))
    merged = dict(dispute["evidence"]) | {name: value or None for name, value in evidence.items()} | dict(file_ids)
    dispute["evidence"] = merged
    details = dict(dispute["evidence_details"])
    details["has_evidence"] = any(value for value in merged.values())
    if submit:
        dispute["status"] = _SUBMITTED[dispute["status"]]
        details["submission_count"] += 1
    dispute["evidence_details"] = details
    previous = {key: before[key] for key in ("evidence", "evidence_details", "status") if before[key] != dispute[key]}
    if not previous:
        return []
    return [_event("charge.dispute.updated", dispute, now, previous)]


def accept(dispute: dict[str, Any], now: int) -> list[dict[str, Any]]:
    """The shop accepts the dispute: lost (an inquiry: warning_closed) at once; returns the events."""
    _open(dispute)
    before = dispute["status"]
    dispute["status"] = "warning_closed" if before in _INQUIRIES else "lost"
    dispute["is_charge_refundable"] = False
    return [_event("charge.dispute.closed", dispute, now, {"status": before})]


def decide(dispute: dict[str, Any], outcome: str, now: int) -> list[dict[str, Any]]:
    """The bank decides an open dispute: won (the amount reinstated) or lost; returns the events.

    An inquiry won is `warning_closed` (no money moved); an inquiry lost is escalated and lost at once:
    the amount and fee are withdrawn (`charge.dispute.funds_withdrawn`) and it is `lost`.
    """
    if outcome not in ("won", "lost"):
        raise ValueError("outcome must be 'won' or 'lost'")
    _open(dispute)
    before, inquiry = dispute["status"], dispute["status"] in _INQUIRIES
    events: list[dict[str, Any]] = []
    dispute["is_charge_refundable"] = False
    if inquiry and outcome == "won":
        dispute["status"] = "warning_closed"
        return [_event("charge.dispute.closed", dispute, now, {"status": before})]
    if inquiry:
        dispute["balance_transactions"] = [_balance_transaction(dispute, -dispute["amount"], DISPUTE_FEE, now)]
        events.append(_event("charge.dispute.funds_withdrawn", dispute, now))
    dispute["status"] = outcome
    events.append(_event("charge.dispute.closed", dispute, now, {"status": before}))
    if outcome == "won":
        reinstated = _balance_transaction(dispute, dispute["amount"], 0, now)
        dispute["balance_transactions"] = [*dispute["balance_transactions"], reinstated]
        events.append(_event("charge.dispute.funds_reinstated", dispute, now))
    return events


def writes(
    dispute: dict[str, Any], events: Sequence[dict[str, Any]], *, new: bool = False
) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """(HSET writes, ZADD index entries, RPUSH pushes) that keep `dispute` and queue `events` for handing over.

    A `new` dispute joins the created index; `dispute-of` keeps the intent's dispute status (for refunds to check
    in one read).
    """
    hset = [
        ["disputes", dispute["id"], json.dumps(dispute)],
        ["dispute-of", dispute["payment_intent"], dispute["status"]],
    ]
    index: list[list[str]] = []
    if new:
        index.append([DISPUTE_INDEX, str(dispute["created"] * 1_000_000), dispute["id"]])
    return hset, index, [[EVENT_QUEUE, json.dumps(event)] for event in events]


def blocks_refund(status: str) -> bool:
    """Stripe refuses to refund a charge with a dispute (not an inquiry) that is open or lost."""
    return status in ("needs_response", "under_review", "lost")
