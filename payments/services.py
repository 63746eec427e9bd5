"""Every write to a payment. Money operations run in atomic phases:

1. in a transaction: lock the payment, check its state, record the gateway call we are about to
   make (`pending_operation`), commit;
2. call the gateway, outside any transaction, with a key derived from our ids (`pay_X:confirm`);
3. in a new transaction: lock again and apply the result through the state machine.

A crash or timeout between phases leaves `pending_operation` set; `payment_settle` (run by a
worker) repeats the same call with the same key, which the gateway answers without charging twice.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from payments import states
from payments.errors import (
    AmountTooLarge,
    CardDeclined,
    GatewayRejected,
    GatewayTimeoutError,
    GatewayUnavailableError,
    PaymentInReview,
    PaymentUnexpectedState,
)
from payments.gateways import get_gateway
from payments.gateways.base import (
    ActionRequired,
    Declined,
    GatewayTimeout,
    IntentResult,
    Permanent,
    Retryable,
)
from payments.locks import lock_payment
from payments.models import CaptureMethod, ChangeSource, Event, GatewayOperation, Payment, PaymentStatusChange
from payments.money import format_amount
from payments.rendering import render_payment, review_state
from payments.risk import checks as risk_checks
from payments.risk.errors import PaymentBlocked
from payments.risk.models import Decision, RiskAssessment
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus
BLOCKED = "blocked"  # failure_code of a payment our risk rules blocked


# --- the one writer of `status` -----------------------------------------------------------------
def event_record(*, type: str, payment: Payment | None, data: dict[str, Any]) -> Event:  # noqa: A002
    """Write an event row (the outbox). Call inside the transaction of the change it describes.

    The relay is asked (once per transaction, after commit) to publish it; a periodic sweep catches
    anything that trigger misses.
    """
    event = Event.objects.create(type=type, payment=payment, data=data)
    connection = transaction.get_connection()
    if not any(callback is _trigger_relay for _sids, callback, _robust in connection.run_on_commit):
        transaction.on_commit(_trigger_relay, robust=True)
    return event


def _trigger_relay() -> None:
    from payments.tasks import relay_outbox

    relay_outbox.delay()


def _transition(
    payment: Payment,
    to_status: str,
    *,
    source: str,
    actor: User | None = None,
    reason: str = "",
    event_type: str | None = None,
    **changes: Any,
) -> Payment:
    """Move a payment that the caller has locked; write the history row and the event with it.

    :raises states.InvalidTransition: when the state machine forbids the move.
    """
    from_status = payment.status
    states.check_transition(from_status, to_status)
    for name, value in changes.items():
        setattr(payment, name, value)
    payment.status = to_status
    payment.save()
    if to_status in {S.CANCELED, S.FAILED}:
        from payments.risk.services import review_close_for_status

        review_close_for_status(payment, to_status)
    PaymentStatusChange.objects.create(
        payment=payment, from_status=from_status, to_status=to_status, actor=actor, source=source, reason=reason
    )
    event_record(type=event_type or states.EVENT_FOR_STATUS[to_status], payment=payment, data=render_payment(payment))
    logger.info(
        "Payment status changed",
        extra={"payment": payment.public_id, "from": from_status, "to": to_status, "source": source},
    )
    return payment


def payment_transition(
    *,
    payment_id: int,
    to_status: str,
    source: str,
    actor: User | None = None,
    reason: str = "",
    event_type: str | None = None,
    **changes: Any,
) -> Payment:
    """Lock the payment, check the transition table, write status, history and event in one transaction.

    :raises states.InvalidTransition: when the state machine forbids the move.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        return _transition(
            payment, to_status, source=source, actor=actor, reason=reason, event_type=event_type, **changes
        )


# --- create -------------------------------------------------------------------------------------
def payment_create(
    *,
    client: User,
    amount: int,
    currency: str,
    customer_id: str,
    idempotency_key: str = "",
    order_id: str = "",
    description: str = "",
    metadata: dict[str, str] | None = None,
    capture_method: str = "automatic",
    payment_method: str = "",
    confirm: bool = False,
    customer_email: str = "",
    customer_ip: str | None = None,
    source: str = ChangeSource.API,
) -> Payment:
    """Create a payment and its gateway intent (and confirm it when asked).

    Repeating the call with the same client and idempotency key resumes the same payment instead of
    creating another: that is how a retry after a 5xx finishes the work it had started.

    :raises CardDeclined: when `confirm` is set and the card is declined (the payment is `failed`).
    :raises GatewayTimeoutError, GatewayUnavailableError: the gateway did not answer; a worker finishes.
    """
    gateway = get_gateway()
    payment = (
        Payment.objects.filter(client=client, idempotency_key=idempotency_key).first() if idempotency_key else None
    )
    if payment is None:
        payment = _create_assessed(
            client=client,
            gateway=gateway,
            fields={
                "idempotency_key": idempotency_key,
                "amount": amount,
                "currency": currency,
                "capture_method": capture_method,
                "customer_id": customer_id,
                "order_id": order_id,
                "description": description,
                "metadata": metadata or {},
                "payment_method": payment_method,
                "customer_email": risk_checks.normalize_email(customer_email),
                "customer_ip": customer_ip,
            },
            source=source,
        )
    if payment.status == S.FAILED and payment.failure_code == BLOCKED:
        raise PaymentBlocked()

    if payment.pending_operation == GatewayOperation.CREATE:
        payment = _call_and_raise_for_api(payment, GatewayOperation.CREATE)
    # A retry of a create whose confirm timed out finishes that confirm with the same key.
    confirm_pending = payment.pending_operation == GatewayOperation.CONFIRM
    if confirm and (payment.status in states.CONFIRMABLE or confirm_pending):
        try:
            payment = payment_confirm(payment=payment, payment_method=payment_method, source=source)
        except PaymentUnexpectedState:
            # A retried create whose confirm a worker finished meanwhile: the create succeeded, so
            # answer with the payment as it is now rather than a conflict.
            payment = Payment.objects.get(pk=payment.pk)
            if payment.status in states.CONFIRMABLE:
                raise
    return payment


def _create_assessed(*, client: User, gateway: Any, fields: dict[str, Any], source: str) -> Payment:
    """Run the risk rules and insert the payment with its assessment, history and events, in one transaction.

    block → the payment is `failed` with `failure_code: blocked` and no gateway call is recorded;
    review → manual capture is forced and `payment.review_opened` is written.
    """
    from payments.risk import services as risk

    fingerprint = risk.risk_card_fingerprint(gateway=gateway, payment_method=fields["payment_method"])
    initial = S.REQUIRES_CONFIRMATION if fields["payment_method"] else S.REQUIRES_PAYMENT_METHOD
    try:
        with transaction.atomic():
            assessment = risk.risk_assess(
                client=client,
                amount=fields["amount"],
                currency=fields["currency"],
                customer_id=fields["customer_id"],
                email=fields["customer_email"],
                ip=fields["customer_ip"],
                card_fingerprint=fingerprint,
            )
            blocked = assessment.decision == Decision.BLOCK
            if assessment.decision == Decision.REVIEW:
                fields["capture_method"] = CaptureMethod.MANUAL
            payment = Payment.objects.create(
                client=client,
                status=initial,
                gateway=gateway.name,
                pending_operation="" if blocked else GatewayOperation.CREATE,
                pending_operation_at=None if blocked else timezone.now(),
                **fields,
            )
            risk.risk_record(payment=payment, assessment=assessment, card_fingerprint=fingerprint)
            PaymentStatusChange.objects.create(payment=payment, from_status="", to_status=initial, source=source)
            event_record(type="payment.initiated", payment=payment, data=render_payment(payment))
            if blocked:
                _transition(
                    payment,
                    S.FAILED,
                    source=source,
                    reason="blocked by risk rules",
                    failure_code=BLOCKED,
                    failure_message=PaymentBlocked.default_message,
                )
            elif assessment.decision == Decision.REVIEW:
                event_record(type="payment.review_opened", payment=payment, data=render_payment(payment))
    except IntegrityError:
        if not fields["idempotency_key"]:
            raise
        return Payment.objects.get(client=client, idempotency_key=fields["idempotency_key"])
    logger.info(
        "Payment created",
        extra={
            "payment": payment.public_id,
            "amount": format_amount(payment.amount, payment.currency),
            "source": source,
            "risk": assessment.decision,
        },
    )
    return payment


# --- confirm, capture, cancel -------------------------------------------------------------------
def payment_confirm(*, payment: Payment, payment_method: str = "", source: str = ChangeSource.API) -> Payment:
    """Confirm the payment with the gateway.

    :raises PaymentUnexpectedState: not confirmable, or another operation is in flight.
    :raises CardDeclined: the card was declined; the payment is now `failed`.
    :raises GatewayTimeoutError, GatewayUnavailableError: the payment is `processing`; a worker finishes.
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.pending_operation == GatewayOperation.CREATE:
            pass  # the intent was never created: create it first, below
        elif locked.pending_operation == GatewayOperation.CONFIRM and locked.status == S.PROCESSING:
            pass  # a confirm that timed out: repeat it with the same key
        elif locked.pending_operation:
            raise PaymentUnexpectedState("Another operation on this payment is in progress.")
        elif locked.status not in states.CONFIRMABLE:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be confirmed.")
        else:
            if payment_method:
                locked.payment_method = payment_method
            if not locked.payment_method:
                raise PaymentUnexpectedState("The payment has no payment method; pass payment_method.")
            locked.pending_operation = GatewayOperation.CONFIRM
            locked.pending_operation_at = timezone.now()
            locked.save(update_fields=["payment_method", "pending_operation", "pending_operation_at", "updated_at"])
    if locked.pending_operation == GatewayOperation.CREATE:
        locked = _call_and_raise_for_api(locked, GatewayOperation.CREATE)
        return payment_confirm(payment=locked, payment_method=payment_method, source=source)
    return _call_and_raise_for_api(locked, GatewayOperation.CONFIRM, source=source)


def payment_capture(*, payment: Payment, amount: int | None = None, source: str = ChangeSource.API) -> Payment:
    """Capture an authorized payment, in full or in part (the rest is released).

    :raises PaymentUnexpectedState: not `requires_capture`, or another operation is in flight.
    :raises AmountTooLarge: more than `amount_capturable`.
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        state = _current_review_state(locked)
        if state == "pending":
            raise PaymentInReview()
        if state == "rejected":
            raise PaymentUnexpectedState("The payment was rejected in review and cannot be captured.")
        if locked.pending_operation:
            raise PaymentUnexpectedState("Another operation on this payment is in progress.")
        if locked.status != S.REQUIRES_CAPTURE:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be captured.")
        to_capture = locked.amount_capturable if amount is None else amount
        if to_capture > locked.amount_capturable:
            raise AmountTooLarge(
                f"amount must be at most the amount capturable ({locked.amount_capturable}).", param="amount"
            )
        locked.pending_operation = GatewayOperation.CAPTURE
        locked.pending_operation_amount = to_capture
        locked.pending_operation_at = timezone.now()
        locked.save(update_fields=["pending_operation", "pending_operation_amount", "pending_operation_at"])
    return _call_and_raise_for_api(locked, GatewayOperation.CAPTURE, source=source)


def _current_review_state(payment: Payment) -> str:
    """The review state of a payment the caller has locked.

    The assessment joined by `lock_payment` is read with the snapshot taken before the lock wait, so a
    decision committed meanwhile does not show in it; a "pending" copy is therefore read again (every
    decision holds the payment lock, so a read after taking it is current). One query, held payments only.
    """
    state = review_state(payment)
    if state == "pending":
        state = RiskAssessment.objects.filter(payment=payment).values_list("review_state", flat=True).first() or ""
    return state


def payment_cancel(
    *, payment: Payment, reason: str = "", source: str = ChangeSource.API, actor: User | None = None
) -> Payment:
    """Cancel a payment that has not been captured, releasing any authorization.

    :raises PaymentUnexpectedState: already captured, canceled or failed, or another operation is in flight.
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.status not in states.CANCELABLE:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be canceled.")
        if locked.pending_operation and locked.pending_operation != GatewayOperation.CREATE:
            raise PaymentUnexpectedState("Another operation on this payment is in progress.")
        if not locked.gateway_reference:
            # Never reached the gateway: nothing to release there.
            return _transition(
                locked,
                S.CANCELED,
                source=source,
                actor=actor,
                reason=reason,
                cancellation_reason=reason,
                pending_operation="",
                pending_operation_at=None,
            )
        locked.pending_operation = GatewayOperation.CANCEL
        locked.pending_operation_at = timezone.now()
        locked.cancellation_reason = reason
        locked.save(update_fields=["pending_operation", "pending_operation_at", "cancellation_reason"])
    return _call_and_raise_for_api(locked, GatewayOperation.CANCEL, source=source)


# --- settling pending gateway operations --------------------------------------------------------
def payment_settle(*, payment_id: int, source: str = ChangeSource.WORKER) -> Payment:
    """Finish the gateway operation recorded on the payment by repeating it with the same key.

    Safe to run any number of times, concurrently with the API or webhooks: the gateway answers a
    repeated key with the first outcome, and results are applied forward only.

    :raises Retryable: the gateway still does not answer (the caller retries later).
    """
    payment = Payment.objects.get(pk=payment_id)
    if not payment.pending_operation:
        if payment.status == S.PROCESSING:  # the gateway itself said processing: ask it again
            return payment_sync(payment_id=payment_id, source=source)
        return payment
    try:
        return _run_operation(payment, payment.pending_operation, source=source)
    except Declined:
        return Payment.objects.get(pk=payment_id)
    except Permanent as exc:
        logger.error("Gateway refused a pending operation", extra={"payment": payment.public_id, "error": exc.message})
        return Payment.objects.get(pk=payment_id)


def payment_mark_needs_attention(*, payment_id: int, error: str) -> None:
    """Retries ran out while settling: flag the payment for staff; its recorded operation stays."""
    Payment.objects.filter(pk=payment_id).update(needs_attention=True, last_error=error[:2000])
    logger.error("Payment needs attention: settling ran out of retries", extra={"payment_id": payment_id})


def payment_sync(*, payment_id: int, source: str = ChangeSource.WORKER) -> Payment:
    """Ask the gateway for the intent and apply what it says (forward moves only)."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.gateway_reference:
        return payment
    intent = get_gateway(payment.gateway).retrieve_intent(reference=payment.gateway_reference)
    return payment_apply_intent(payment_id=payment_id, intent=intent, source=source)


def payment_apply_intent(*, payment_id: int, intent: IntentResult, source: str, clear_operation: str = "") -> Payment:
    """Apply the gateway's view of the intent. Backward or sideways news is ignored (stale)."""
    with transaction.atomic():
        payment = lock_payment(payment_id)
        asked_to_capture = payment.pending_operation_amount  # read before the operation is cleared
        if clear_operation and payment.pending_operation == clear_operation:
            payment.pending_operation = ""
            payment.pending_operation_amount = None
            payment.pending_operation_at = None
            payment.needs_attention = False
        target = _status_for_intent(payment, intent)
        changes: dict[str, Any] = {}
        if intent.client_secret and not payment.client_secret:
            changes["client_secret"] = intent.client_secret
        if target in {S.REQUIRES_CAPTURE, S.SUCCEEDED} or payment.status == S.REQUIRES_CAPTURE:
            changes["amount_capturable"] = intent.amount_capturable if target == S.REQUIRES_CAPTURE else 0
        if target == S.SUCCEEDED:
            changes["amount_received"] = intent.amount_received or asked_to_capture or payment.amount
        if target == S.FAILED:
            changes["failure_code"] = intent.failure_code or "payment_failed"
            changes["failure_message"] = intent.failure_message or "The payment failed."
        if target == S.CANCELED:
            changes["amount_capturable"] = 0
        if target != payment.status and states.is_forward(payment.status, target):
            return _transition(payment, target, source=source, **changes)
        if target != payment.status:
            logger.info(
                "Ignored stale gateway state",
                extra={"payment": payment.public_id, "status": payment.status, "gateway_status": intent.status},
            )
        payment.save()
        return payment


def _status_for_intent(payment: Payment, intent: IntentResult) -> str:
    if intent.status == "requires_payment_method" and intent.failure_code:
        return S.FAILED
    if intent.status == "requires_payment_method" and payment.status == S.REQUIRES_CONFIRMATION:
        return payment.status
    return intent.status


def _call_and_raise_for_api(payment: Payment, operation: str, *, source: str = ChangeSource.API) -> Payment:
    """Run a recorded operation for an API request: map gateway failures to API errors.

    A timeout or outage leaves the operation recorded, moves a confirm to `processing`, and asks a
    worker (after commit) to finish it with the same key.
    """
    try:
        return _run_operation(payment, operation, source=source)
    except Declined as exc:
        raise CardDeclined(exc.message, code=exc.code or "card_declined") from exc
    except Retryable as exc:
        if operation == GatewayOperation.CONFIRM:
            _move_to_processing(payment.pk, source=source)
        _enqueue_settle(payment.pk)
        logger.warning(
            "Gateway did not answer; a worker will settle the payment",
            extra={"payment": payment.public_id, "operation": operation, "error": type(exc).__name__},
        )
        error_class = GatewayTimeoutError if isinstance(exc, GatewayTimeout) else GatewayUnavailableError
        raise error_class() from exc
    except (Permanent, ActionRequired) as exc:
        _clear_operation(payment.pk, operation)
        raise GatewayRejected(exc.message) from exc


def _run_operation(payment: Payment, operation: str, *, source: str) -> Payment:
    """Phase 2 and 3 of one recorded operation. Gateway errors propagate (the operation stays recorded)."""
    gateway = get_gateway(payment.gateway)
    key = f"{payment.public_id}:{operation}"
    calls: dict[str, Callable[[], IntentResult]] = {
        GatewayOperation.CREATE: lambda: gateway.create_intent(
            amount=payment.amount,
            currency=payment.currency,
            capture_method=payment.capture_method,
            payment_method=payment.payment_method,
            metadata={"payment_id": payment.public_id, **({"order_id": payment.order_id} if payment.order_id else {})},
            description=payment.description,
            idempotency_key=key,
        ),
        GatewayOperation.CONFIRM: lambda: gateway.confirm_intent(
            reference=payment.gateway_reference or "", payment_method=payment.payment_method, idempotency_key=key
        ),
        GatewayOperation.CAPTURE: lambda: gateway.capture_intent(
            reference=payment.gateway_reference or "", amount=payment.pending_operation_amount, idempotency_key=key
        ),
        GatewayOperation.CANCEL: lambda: gateway.cancel_intent(
            reference=payment.gateway_reference or "", reason=payment.cancellation_reason, idempotency_key=key
        ),
    }
    try:
        intent = calls[operation]()
    except Declined as exc:
        _apply_decline(payment.pk, exc, source=source)
        raise
    if operation == GatewayOperation.CREATE:
        return _apply_created(payment.pk, intent)
    return payment_apply_intent(payment_id=payment.pk, intent=intent, source=source, clear_operation=operation)


def _apply_created(payment_id: int, intent: IntentResult) -> Payment:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        payment.gateway_reference = intent.reference
        payment.client_secret = intent.client_secret
        if payment.pending_operation == GatewayOperation.CREATE:
            payment.pending_operation = ""
            payment.pending_operation_at = None
        payment.save()
        return payment


def _apply_decline(payment_id: int, exc: Declined, *, source: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.status == S.FAILED or not states.can_transition(payment.status, S.FAILED):
            return
        _transition(
            payment,
            S.FAILED,
            source=source,
            reason=exc.code,
            failure_code=exc.code or "card_declined",
            failure_message=exc.message[:500],
            pending_operation="",
            pending_operation_at=None,
        )


def _move_to_processing(payment_id: int, *, source: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.status != S.PROCESSING and states.can_transition(payment.status, S.PROCESSING):
            _transition(payment, S.PROCESSING, source=source, reason="gateway did not answer")


def _clear_operation(payment_id: int, operation: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.pending_operation == operation:
            payment.pending_operation = ""
            payment.pending_operation_amount = None
            payment.pending_operation_at = None
            payment.save(update_fields=["pending_operation", "pending_operation_amount", "pending_operation_at"])


def _enqueue_settle(payment_id: int) -> None:
    from payments.tasks import settle_payment

    transaction.on_commit(lambda: settle_payment.delay(payment_id=payment_id))


# --- refunds (called by the refunds app with the payment locked) --------------------------------
def payment_add_refunded(
    *, payment: Payment, amount: int, source: str, actor: User | None = None, reason: str = ""
) -> Payment:
    """Count a succeeded refund on a payment the caller has locked (inside its transaction).

    The status becomes `partially_refunded` or `refunded`, with history and a `payment.refunded` event.

    :raises states.InvalidTransition: the payment was never captured.
    """
    refunded = payment.amount_refunded + amount
    target = S.REFUNDED if refunded >= payment.amount_received else S.PARTIALLY_REFUNDED
    return _transition(payment, target, source=source, actor=actor, reason=reason, amount_refunded=refunded)


# --- disputes (reported by Stripe webhooks) -----------------------------------------------------
def payment_flag_dispute(*, payment_id: int, dispute_reference: str, reason: str, amount: int, currency: str) -> bool:
    """Flag the payment as disputed and write a `payment.dispute_opened` event, once per dispute.

    The status does not change (a dispute is not a refund); the flag is for the back office.
    Returns False when this dispute was already recorded.
    """
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.dispute_reference == dispute_reference:
            return False
        payment.disputed_at = timezone.now()
        payment.dispute_reason = reason[:64]
        payment.dispute_reference = dispute_reference
        payment.save(update_fields=["disputed_at", "dispute_reason", "dispute_reference", "updated_at"])
        dispute = {"id": dispute_reference, "reason": reason or None, "amount": amount, "currency": currency}
        data = {**render_payment(payment), "dispute": dispute}
        event_record(type="payment.dispute_opened", payment=payment, data=data)
    logger.warning("Payment disputed", extra={"payment": payment.public_id, "dispute": dispute_reference})
    return True


# --- staff override (four-eyes, approved in the back office) ------------------------------------
def payment_override_status(*, payment_id: int, to_status: str, actor: User, reason: str) -> Payment:
    """Set a payment's status outside the state machine: the one audited exception of API.md.

    Runs only once a second staff member has approved the request (audit.services). Locks the payment
    and writes status, the history row (source admin) and a `payment.status_overridden` event together.

    :raises ValueError: the status is unknown or the reason is empty.
    """
    if to_status not in PaymentStatus.values:
        raise ValueError(f"{to_status!r} is not a payment status")
    if not reason.strip():
        raise ValueError("A status override needs a reason.")
    with transaction.atomic():
        payment = lock_payment(payment_id)
        from_status = payment.status
        payment.status = to_status
        payment.save()
        PaymentStatusChange.objects.create(
            payment=payment,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            source=ChangeSource.ADMIN,
            reason=reason,
        )
        event_record(type="payment.status_overridden", payment=payment, data=render_payment(payment))
    logger.warning(
        "Payment status overridden",
        extra={"payment": payment.public_id, "from": from_status, "to": to_status, "actor": actor.pk},
    )
    return payment
