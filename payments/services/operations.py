"""Confirm, capture and cancel, and settling recorded gateway operations. Money operations run in atomic phases:

1. in a transaction: lock the payment, check its state, record the gateway call we are about to
   make (`pending_operation`), commit;
2. call the gateway, outside any transaction, with a key derived from our ids (`pay_X:confirm`);
3. in a new transaction: lock again and apply the result through the status writer.

A crash or timeout between phases leaves `pending_operation` set; `payment_settle` (run by a
worker) repeats the same call with the same key, which the gateway answers without charging twice.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from accounts.models import User
from config.rows import batched
from config.tasks import enqueue_on_commit
from gateways import get_gateway
from gateways.base import ActionRequired, Declined, GatewayError, GatewayTimeout, IntentResult, Permanent, Retryable
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
from payments.locks import lock_payment
from payments.models import ChangeSource, GatewayOperation, Payment, ReviewState
from payments.ports import saved_methods
from payments.saving import PaymentChanged, is_committed_copy, payment_update
from payments.services.status import payment_status_change
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus
SETTLE_TASK = "payments.tasks.settle_payment"
Answer = Callable[[Payment], None]  # stores the API response in the transaction that applies the gateway's answer
# What a settled gateway operation leaves behind: nothing recorded, nothing for staff to look at.
OPERATION_SETTLED: dict[str, Any] = {
    "pending_operation": "",
    "pending_operation_amount": None,
    "pending_operation_at": None,
    "needs_attention": False,
}


def payment_confirm(*, payment: Payment, payment_method: str = "", source: str = ChangeSource.API) -> Payment:
    """Confirm the payment with the gateway.

    :raises PaymentUnexpectedState: not confirmable, or another operation is in flight.
    :raises CardDeclined: the card was declined; the payment is now `failed`.
    :raises GatewayTimeoutError, GatewayUnavailableError: the payment is `processing`; a worker finishes.
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.pending_operation in {GatewayOperation.CREATE, GatewayOperation.CREATE_CONFIRM}:
            pass  # the intent was never created (or its one-call create + confirm is unanswered): below
        elif locked.pending_operation == GatewayOperation.CONFIRM and locked.status == S.PROCESSING:
            pass  # a confirm that timed out: repeat it with the same key
        elif locked.pending_operation:
            raise PaymentUnexpectedState("Another operation on this payment is in progress.")
        elif locked.status not in states.CONFIRMABLE:
            raise PaymentUnexpectedState(f"A payment in status {locked.status} cannot be confirmed.")
        else:
            method = payment_method or locked.payment_method
            if not method:
                raise PaymentUnexpectedState("The payment has no payment method; pass payment_method.")
            payment_update(
                locked,
                payment_method=method,
                pending_operation=GatewayOperation.CONFIRM,
                pending_operation_at=timezone.now(),
            )
    if locked.pending_operation == GatewayOperation.CREATE_CONFIRM:
        return call_for_api(locked, GatewayOperation.CREATE_CONFIRM, source=source)  # the same call, the same key
    if locked.pending_operation == GatewayOperation.CREATE:
        locked = call_for_api(locked, GatewayOperation.CREATE)
        return payment_confirm(payment=locked, payment_method=payment_method, source=source)
    return call_for_api(locked, GatewayOperation.CONFIRM, source=source)


def payment_capture(*, payment: Payment, amount: int | None = None, source: str = ChangeSource.API) -> Payment:
    """Capture an authorized payment, in full or in part (the rest is released).

    :raises PaymentUnexpectedState: not `requires_capture`, or another operation is in flight.
    :raises AmountTooLarge: more than `amount_capturable`.
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.review_state == ReviewState.PENDING:
            raise PaymentInReview()
        if locked.review_state == ReviewState.REJECTED:
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
        payment_update(
            locked,
            pending_operation=GatewayOperation.CAPTURE,
            pending_operation_amount=to_capture,
            pending_operation_at=timezone.now(),
        )
    return call_for_api(locked, GatewayOperation.CAPTURE, source=source)


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
            return payment_status_change(
                locked,
                S.CANCELED,
                source=source,
                actor=actor,
                reason=reason,
                cancellation_reason=reason,
                pending_operation="",
                pending_operation_at=None,
            )
        payment_update(
            locked,
            pending_operation=GatewayOperation.CANCEL,
            pending_operation_at=timezone.now(),
            cancellation_reason=reason,
        )
    return call_for_api(locked, GatewayOperation.CANCEL, source=source)


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


def payment_sync(*, payment_id: int, source: str = ChangeSource.WORKER) -> Payment:
    """Ask the gateway for the intent and apply what it says (forward moves only)."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.gateway_reference:
        return payment
    intent = get_gateway(payment.gateway).retrieve_intent(reference=payment.gateway_reference)
    return payment_apply_intent(payment_id=payment_id, intent=intent, source=source)


def payment_apply_intent(
    *,
    payment_id: int,
    intent: IntentResult,
    source: str,
    clear_operation: str = "",
    known: Payment | None = None,
    answer: Answer | None = None,
    locked: Payment | None = None,
) -> Payment:
    """Apply the gateway's view of the intent. Backward or sideways news is ignored (stale).

    `known` is the payment as this request committed it before the gateway call: it is changed
    without a second read while the row is still that copy (`payments.saving`), else locked and read.
    `locked` is the payment as the caller read it with `lock_payment` in the transaction it has open (a
    webhook's): applied as it is, in that transaction (no second read, no savepoint: an error rolls the
    caller's transaction back).
    `answer` runs last, in the same transaction (it stores the API response with the change).

    :raises TransactionManagementError: `locked` given outside a transaction (its lock would be gone).
    """
    if locked is not None:
        if not transaction.get_connection().in_atomic_block:
            raise TransactionManagementError("payment_apply_intent(locked=…) needs the transaction holding the lock")
        with transaction.atomic(savepoint=False), batched():
            return _apply_intent(locked, intent, source=source, clear_operation=clear_operation, answer=answer)
    if known is not None:
        try:
            with transaction.atomic(), batched():
                return _apply_intent(known, intent, source=source, clear_operation=clear_operation, answer=answer)
        except PaymentChanged:
            pass  # a webhook, a worker or staff changed it meanwhile: lock it and decide on the current row
    with transaction.atomic(), batched():
        payment = lock_payment(payment_id)
        return _apply_intent(payment, intent, source=source, clear_operation=clear_operation, answer=answer)


def _apply_intent(
    payment: Payment, intent: IntentResult, *, source: str, clear_operation: str, answer: Answer | None
) -> Payment:
    asked_to_capture = payment.pending_operation_amount  # read before the operation is cleared
    changes: dict[str, Any] = {}
    if clear_operation and payment.pending_operation == clear_operation:
        changes.update(OPERATION_SETTLED)
    target = _status_for_intent(payment, intent)
    if clear_operation == GatewayOperation.CREATE_CONFIRM and not payment.gateway_reference:
        changes["gateway_reference"] = intent.reference  # our own call's answer: the intent it made
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
        payment = payment_status_change(payment, target, source=source, **changes)
    else:
        if target != payment.status:
            logger.info(
                "Ignored stale gateway state",
                extra={"payment": payment.public_id, "status": payment.status, "gateway_status": intent.status},
            )
        # The news is old, but the call is done, and a new intent's id is kept.
        kept = {name: changes[name] for name in ("gateway_reference", "client_secret") if name in changes}
        if clear_operation and payment.pending_operation == clear_operation:
            kept.update(OPERATION_SETTLED)
        if kept:
            payment_update(payment, **kept)
    if answer is not None:
        answer(payment)
    return payment


def _status_for_intent(payment: Payment, intent: IntentResult) -> str:
    if intent.status == "requires_payment_method" and intent.failure_code:
        return S.FAILED
    if intent.status == "requires_payment_method" and payment.status == S.REQUIRES_CONFIRMATION:
        return payment.status
    return intent.status


def call_for_api(
    payment: Payment,
    operation: str,
    *,
    source: str = ChangeSource.API,
    then: str = "",
    answer: Answer | None = None,
) -> Payment:
    """Run a recorded operation for an API request: map gateway failures to API errors.

    A timeout or outage leaves the operation recorded, moves a confirm to `processing`, and asks a
    worker (after commit) to finish it with the same key.
    """
    try:
        return _run_operation(payment, operation, source=source, then=then, answer=answer)
    except Declined as exc:
        raise CardDeclined(exc.message, code=exc.code or "card_declined") from exc
    except Retryable as exc:
        if operation in {GatewayOperation.CONFIRM, GatewayOperation.CREATE_CONFIRM}:
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


def _run_operation(
    payment: Payment, operation: str, *, source: str, then: str = "", answer: Answer | None = None
) -> Payment:
    """Phase 2 and 3 of one recorded operation. Gateway errors propagate (the operation stays recorded).

    `then=GatewayOperation.CONFIRM` after a create records the confirm in the same transaction that
    stores the new intent (phase 1 of the confirm), so the caller can make the call at once.
    `create_confirm` is both in one gateway call (Stripe: `confirm=true`), under its own key.
    """
    gateway = get_gateway(payment.gateway)
    key = f"{payment.public_id}:{operation}"

    method = payment.gateway_payment_method or payment.payment_method  # a saved pmt_... is charged by its pm_...

    def create(*, confirm: bool) -> IntentResult:
        return gateway.create_intent(
            amount=payment.amount,
            currency=payment.currency,
            capture_method=payment.capture_method,
            payment_method=method,
            confirm=confirm,
            metadata={"payment_id": payment.public_id, **({"order_id": payment.order_id} if payment.order_id else {})},
            description=payment.description,
            idempotency_key=key,
            customer=payment.gateway_customer,
            off_session=payment.off_session and confirm,
            setup_future_usage=payment.setup_future_usage,
        )

    calls: dict[str, Callable[[], IntentResult]] = {
        GatewayOperation.CREATE: lambda: create(confirm=False),
        GatewayOperation.CREATE_CONFIRM: lambda: create(confirm=True),
        GatewayOperation.CONFIRM: lambda: gateway.confirm_intent(
            reference=payment.gateway_reference or "", payment_method=method, idempotency_key=key
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
    if payment.setup_future_usage and intent.payment_method and intent.status in SAVES_CARD:
        _record_saved_card(payment, intent.payment_method)
    known = payment if is_committed_copy(payment) else None
    if operation == GatewayOperation.CREATE:
        then_confirm = then == GatewayOperation.CONFIRM
        return _apply_created(payment.pk, intent, then_confirm=then_confirm, known=known, answer=answer)
    return payment_apply_intent(
        payment_id=payment.pk, intent=intent, source=source, clear_operation=operation, known=known, answer=answer
    )


# An intent in these statuses has its card attached to the customer when `setup_future_usage` was asked.
SAVES_CARD = frozenset({"succeeded", "requires_capture", "processing"})


def _record_saved_card(payment: Payment, reference: str) -> None:
    """Record the card the gateway saved for the customer (outside any transaction; the port may call the gateway).

    A failure here never fails the payment: the gateway's `payment_method.attached` webhook records it too.
    """
    try:
        saved_methods().saved_after_payment(
            client=payment.client, customer_id=payment.customer_id, payment_method_reference=reference
        )
    except GatewayError as exc:
        logger.warning(
            "The saved card could not be recorded now; the payment_method.attached webhook will",
            extra={"payment": payment.public_id, "error": type(exc).__name__},
        )


def _apply_created(
    payment_id: int,
    intent: IntentResult,
    *,
    then_confirm: bool = False,
    known: Payment | None = None,
    answer: Answer | None = None,
) -> Payment:
    if known is not None:
        try:
            with transaction.atomic(), batched():
                return _store_created(known, intent, then_confirm=then_confirm, answer=answer)
        except PaymentChanged:
            pass  # changed meanwhile: lock it and read it again
    with transaction.atomic(), batched():
        return _store_created(lock_payment(payment_id), intent, then_confirm=then_confirm, answer=answer)


def _store_created(payment: Payment, intent: IntentResult, *, then_confirm: bool, answer: Answer | None) -> Payment:
    changes: dict[str, Any] = {"gateway_reference": intent.reference, "client_secret": intent.client_secret}
    if payment.pending_operation == GatewayOperation.CREATE:
        if then_confirm and payment.payment_method and payment.status in states.CONFIRMABLE:
            changes.update(pending_operation=GatewayOperation.CONFIRM, pending_operation_at=timezone.now())
        else:
            changes.update(pending_operation="", pending_operation_at=None)
    payment = payment_update(payment, **changes)
    if answer is not None:
        answer(payment)
    return payment


def _apply_decline(payment_id: int, exc: Declined, *, source: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.status == S.FAILED or not states.can_transition(payment.status, S.FAILED):
            return
        created: dict[str, Any] = {}  # a create + confirm that was declined still made an intent: keep its id
        if exc.intent is not None and exc.intent.reference and not payment.gateway_reference:
            created = {"gateway_reference": exc.intent.reference, "client_secret": exc.intent.client_secret}
        payment_status_change(
            payment,
            S.FAILED,
            source=source,
            reason=exc.code,
            failure_code=exc.code or "card_declined",
            failure_message=exc.message[:500],
            pending_operation="",
            pending_operation_at=None,
            **created,
        )


def _move_to_processing(payment_id: int, *, source: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.status != S.PROCESSING and states.can_transition(payment.status, S.PROCESSING):
            payment_status_change(payment, S.PROCESSING, source=source, reason="gateway did not answer")


def _clear_operation(payment_id: int, operation: str) -> None:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        if payment.pending_operation == operation:
            payment_update(payment, pending_operation="", pending_operation_amount=None, pending_operation_at=None)


def _enqueue_settle(payment_id: int) -> None:
    enqueue_on_commit(SETTLE_TASK, payment_id=payment_id)
