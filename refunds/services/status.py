"""The one writer of a refund's `status`: state machine, history row and event, in the caller's transaction."""

import logging
from typing import Any

from accounts.models import User
from config.rows import insert
from events.models import Event
from events.services import event_record
from refunds import states
from refunds.models import Refund, RefundStatusChange
from refunds.rendering import render_refund
from refunds.saving import refund_save
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)


def refund_event_record(*, refund: Refund, type: str) -> Event:  # noqa: A002
    """A refund's events are its payment's: they are published in order with the payment's own."""
    payment = refund.payment
    return event_record(
        type=type,
        client_id=payment.client_id,
        subject_type="payment",
        subject_id=payment.public_id,
        data=render_refund(refund),
    )


def refund_status_initial(refund: Refund, *, source: str, actor: User | None = None, reason: str = "") -> None:
    """Record a refund just inserted (`pending`): the history row from nothing and `refund.created`."""
    insert(
        RefundStatusChange(
            refund=refund, from_status="", to_status=RefundStatus.PENDING, actor=actor, source=source, reason=reason
        ),
        deferred=True,
    )
    refund_event_record(refund=refund, type="refund.created")


def refund_status_change(
    refund: Refund, to_status: str, *, source: str, actor: User | None = None, **changes: Any
) -> Refund:
    """Move a refund the caller has locked (after its payment), with history and event.

    :raises states.InvalidRefundTransition: the state machine forbids the move.
    """
    from_status = refund.status
    states.check_transition(from_status, to_status)
    for name, value in changes.items():
        setattr(refund, name, value)
    refund.status = to_status
    refund_save(refund, ["status", *changes])
    change = RefundStatusChange(refund=refund, from_status=from_status, to_status=to_status, actor=actor, source=source)
    insert(change, deferred=True)  # inside `config.rows.batched()`, with the event
    refund_event_record(refund=refund, type=states.EVENT_FOR_STATUS[to_status])
    logger.info("Refund status changed", extra={"refund": refund.public_id, "from": from_status, "to": to_status})
    return refund
