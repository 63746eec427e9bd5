"""The one writer of a payment's `status`, its review hold and their history: every change goes through here.

Every caller (create, the gateway operations, webhooks, workers, reconciliation fixes, the staff
override) holds the payment's row lock inside a transaction. A status change saves only the fields it
changes (`save(update_fields=...)`, so django-auditlog records them), writes the history row and the
event in the same transaction, and ends a review hold that can no longer lead to a capture.
"""

import logging
from typing import Any

from accounts.models import User
from config.rows import insert
from events.models import Event
from events.services import event_record
from payments import states
from payments.metrics import payment_transaction_count
from payments.models import ChangeSource, Payment, PaymentStatusChange, ReviewState
from payments.ports import risk_assessor
from payments.rendering import render_payment_for_event
from payments.saving import payment_update
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus


def payment_event_record(*, payment: Payment, type: str, data: dict[str, Any] | None = None) -> Event:  # noqa: A002
    """Write an event about the payment (the outbox); `data` defaults to the payment as events carry it."""
    return event_record(
        type=type,
        client_id=payment.client_id,
        subject_type="payment",
        subject_id=payment.public_id,
        data=render_payment_for_event(payment) if data is None else data,
    )


def payment_status_initial(payment: Payment, *, source: str) -> None:
    """Record the status of a payment just inserted: the history row from nothing, and `payment.initiated`."""
    insert(PaymentStatusChange(payment=payment, from_status="", to_status=payment.status, source=source), deferred=True)
    payment_transaction_count(payment)
    payment_event_record(payment=payment, type="payment.initiated")
    if payment.review_state == ReviewState.PENDING:
        payment_event_record(payment=payment, type="payment.review_opened")


def payment_status_change(
    payment: Payment,
    to_status: str,
    *,
    source: str,
    actor: User | None = None,
    reason: str = "",
    event_type: str | None = None,
    **changes: Any,
) -> Payment:
    """Move a payment the caller has locked, through the state machine, with history and event.

    :raises states.InvalidTransition: the state machine forbids the move.
    """
    states.check_transition(payment.status, to_status)
    return _write(payment, to_status, source=source, actor=actor, reason=reason, event_type=event_type, **changes)


def payment_status_override(payment: Payment, to_status: str, *, actor: User, reason: str) -> Payment:
    """Set the status of a locked payment outside the transition table (the audited staff override).

    Still one write with history and the `payment.status_overridden` event; it also ends an open
    review hold and forgets a recorded gateway operation, since staff have said where the payment is.
    """
    return _write(
        payment,
        to_status,
        source=ChangeSource.ADMIN,
        actor=actor,
        reason=reason,
        event_type="payment.status_overridden",
        hold_note="Status overridden by staff.",
        pending_operation="",
        pending_operation_amount=None,
        pending_operation_at=None,
    )


def payment_review_close(payment: Payment, *, state: str, note: str, notify_assessor: bool = True) -> None:
    """End the review hold of a locked payment (approved or rejected) and write `payment.review_closed`.

    `notify_assessor` is False when the assessor itself closes the review (it records its side).
    """
    payment_update(payment, review_state=state)
    payment_event_record(payment=payment, type="payment.review_closed")
    if notify_assessor:
        risk_assessor().hold_ended(payment=payment, state=state, note=note)


def _write(
    payment: Payment,
    to_status: str,
    *,
    source: str,
    actor: User | None,
    reason: str,
    event_type: str | None,
    hold_note: str = "",
    **changes: Any,
) -> Payment:
    from_status = payment.status
    payment_update(payment, status=to_status, **changes)
    if payment.review_state == ReviewState.PENDING and (hold_note or to_status in states.ENDS_REVIEW):
        # Nobody needs to decide a payment that can no longer be captured (or whose status staff set).
        state = ReviewState.REJECTED if to_status in states.ENDS_REVIEW else ReviewState.APPROVED
        payment_review_close(payment, state=state, note=hold_note or f"Payment {to_status} while held.")
    insert(
        PaymentStatusChange(
            payment=payment, from_status=from_status, to_status=to_status, actor=actor, source=source, reason=reason
        ),
        deferred=True,
    )
    payment_event_record(payment=payment, type=event_type or states.EVENT_FOR_STATUS[to_status])
    payment_transaction_count(payment)
    logger.info(
        "Payment status changed",
        extra={"payment": payment.public_id, "from": from_status, "to": to_status, "source": source},
    )
    return payment
