"""The one writer of a dispute's `status`, its history and its events: every change goes through here.

The caller holds the payment's and the dispute's row locks inside a transaction; the history row and the
events are written in that same transaction (the outbox).
"""

import logging
from typing import Any

from accounts.models import User
from disputes import states
from disputes.models import Dispute, DisputeStatusChange
from disputes.rendering import dispute_event_data
from events.services import event_record

logger = logging.getLogger(__name__)


def dispute_event(dispute: Dispute, type: str) -> None:  # noqa: A002
    event_record(
        type=type,
        client_id=dispute.client_id,
        subject_type="dispute",
        subject_id=dispute.public_id,
        data=dispute_event_data(dispute),
    )


def _funds_events(dispute: Dispute, *, withdrawn_before: bool, reinstated_before: bool) -> None:
    if dispute.funds_withdrawn and not withdrawn_before:
        dispute_event(dispute, "dispute.funds_withdrawn")
    if dispute.funds_reinstated and not reinstated_before:
        dispute_event(dispute, "dispute.funds_reinstated")


def dispute_status_initial(dispute: Dispute, *, source: str) -> None:
    """A dispute just inserted: its history row from nothing and `dispute.created` (and what it arrived with)."""
    DisputeStatusChange.objects.create(dispute=dispute, from_status="", to_status=dispute.status, source=source)
    dispute_event(dispute, "dispute.created")
    _funds_events(dispute, withdrawn_before=False, reinstated_before=False)
    if dispute.status in states.TERMINAL:
        dispute_event(dispute, "dispute.closed")


def dispute_change(
    dispute: Dispute,
    to_status: str,
    *,
    source: str,
    fields: dict[str, Any],
    actor: User | None = None,
    reason: str = "",
) -> Dispute:
    """Move a locked dispute through the state machine (and save `fields` with it), with history and events.

    Entering a closed status writes `dispute.closed`, any other change `dispute.updated`; the funds flags
    (which only go forward) write `dispute.funds_withdrawn` / `dispute.funds_reinstated` when they turn on.

    :raises states.InvalidDisputeTransition: the state machine forbids the move.
    """
    from_status = dispute.status
    if to_status != from_status:
        states.check_transition(from_status, to_status)
    withdrawn_before, reinstated_before = dispute.funds_withdrawn, dispute.funds_reinstated
    changed = dict(fields)
    if to_status != from_status:
        changed["status"] = to_status
    for name, value in changed.items():
        setattr(dispute, name, value)
    dispute.save(update_fields=[*changed, "updated_at"])
    if to_status != from_status:
        DisputeStatusChange.objects.create(
            dispute=dispute, from_status=from_status, to_status=to_status, source=source, actor=actor, reason=reason
        )
        logger.info(
            "Dispute status changed",
            extra={"dispute": dispute.public_id, "from": from_status, "to": to_status, "source": source},
        )
    if to_status != from_status and to_status in states.TERMINAL:
        dispute_event(dispute, "dispute.closed")
    elif to_status != from_status or set(changed) - {"funds_withdrawn", "funds_reinstated"}:
        dispute_event(dispute, "dispute.updated")
    _funds_events(dispute, withdrawn_before=withdrawn_before, reinstated_before=reinstated_before)
    return dispute
