"""Creating a payment: the risk check through the core's port, the insert, then the gateway intent."""

import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from config.rows import batched
from gateways import get_gateway
from gateways.base import Retryable
from payments import states
from payments.errors import GatewayUnavailableError, PaymentBlocked, PaymentUnexpectedState, SavedMethodInvalid
from payments.idempotency import KeyClaim
from payments.models import CaptureMethod, ChangeSource, GatewayOperation, Payment, ReviewState
from payments.money import format_amount
from payments.ports import (
    Decision,
    RiskAssessor,
    RiskPreparation,
    RiskPreparationStale,
    RiskRequest,
    RiskVerdict,
    SavedMethodRefused,
    risk_assessor,
    saved_methods,
)
from payments.saving import payment_insert, remember_as_committed
from payments.services.operations import call_for_api, payment_confirm
from payments.services.status import payment_status_change, payment_status_initial
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)
S = PaymentStatus
SAVED_METHOD_PREFIX = "pmt_"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def payment_create(
    *,
    client: User,
    amount: int,
    currency: str,
    customer_id: str,
    idempotency_key: str = "",
    claim: KeyClaim[Payment] | None = None,
    order_id: str = "",
    description: str = "",
    metadata: dict[str, str] | None = None,
    capture_method: str = "automatic",
    payment_method: str = "",
    confirm: bool = False,
    customer_email: str = "",
    customer_ip: str | None = None,
    off_session: bool = False,
    setup_future_usage: str = "",
    source: str = ChangeSource.API,
) -> Payment:
    """Create a payment and its gateway intent (and confirm it when asked, in the same gateway call).

    Repeating the call with the same client and idempotency key resumes the same payment instead of
    creating another: that is how a retry after a 5xx finishes the work it had started. An API request
    passes its `claim` instead: the key is claimed in the transaction that inserts the payment and the
    response stored in the one that applies the gateway's answer (`payments.idempotency.KeyClaim`), so
    create + confirm costs two commits.

    A `payment_method` that is a saved method (`pmt_…`) is resolved first, through the port
    `payments.ports.SavedMethods`, to the gateway's customer and method: one that is not an active saved
    method of this client's customer is refused before anything is stored or sent to the gateway.
    `setup_future_usage` makes sure the customer exists at the gateway, so the card can be saved to it.

    :raises SavedMethodInvalid: the `pmt_…` is not this customer's, is another client's, or is detached.
    :raises PaymentBlocked: the risk check blocked it (the payment is `failed`, `failure_code: blocked`).
    :raises CardDeclined: when `confirm` is set and the card is declined (the payment is `failed`).
    :raises GatewayTimeoutError, GatewayUnavailableError: the gateway did not answer; a worker finishes.
    :raises Replay: (with a claim) the request was answered before.
    """
    fields: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "amount": amount,
        "currency": currency,
        "capture_method": capture_method,
        "customer_id": customer_id,
        "order_id": order_id,
        "description": description,
        "metadata": metadata or {},
        "payment_method": payment_method,
        "customer_email": normalize_email(customer_email),
        "customer_ip": customer_ip,
        "off_session": off_session,
        "setup_future_usage": setup_future_usage,
        **_charge_target(
            client=client, customer_id=customer_id, payment_method=payment_method, setup_future_usage=setup_future_usage
        ),
    }
    if claim is not None:
        payment = _create_claimed(client=client, claim=claim, fields=fields, confirm=confirm, source=source)
    else:
        found = idempotency_key and Payment.objects.filter(client=client, idempotency_key=idempotency_key).first()
        payment = found or _create_assessed(client=client, fields=fields, confirm=confirm, source=source)
    if payment.status == S.FAILED and payment.failure_code == PaymentBlocked.default_code:
        raise PaymentBlocked()

    answer = claim.answer if claim is not None else None
    if payment.pending_operation == GatewayOperation.CREATE_CONFIRM:
        return call_for_api(payment, GatewayOperation.CREATE_CONFIRM, source=source, answer=answer)
    if payment.pending_operation == GatewayOperation.CREATE:
        then = GatewayOperation.CONFIRM if confirm else ""
        final = None if then else answer  # with a confirm to follow, the confirm's transaction is the last
        payment = call_for_api(payment, GatewayOperation.CREATE, source=source, then=then, answer=final)
        if then and payment.pending_operation == GatewayOperation.CONFIRM:
            # The confirm was recorded with the new intent (one commit): make it now, with its own key.
            return call_for_api(payment, GatewayOperation.CONFIRM, source=source)
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


def _charge_target(*, client: User, customer_id: str, payment_method: str, setup_future_usage: str) -> dict[str, str]:
    """The gateway customer and method a payment charges; a saved `pmt_…` resolved before any transaction."""
    methods = saved_methods()
    if payment_method.startswith(SAVED_METHOD_PREFIX):
        try:
            saved = methods.method_for_charge(client=client, customer_id=customer_id, payment_method=payment_method)
        except SavedMethodRefused as exc:
            raise SavedMethodInvalid(exc.message) from exc
        return {"gateway_payment_method": saved.payment_method_reference, "gateway_customer": saved.customer_reference}
    if setup_future_usage:
        try:
            return {"gateway_customer": methods.customer_for_saving(client=client, customer_id=customer_id)}
        except SavedMethodRefused as exc:
            raise SavedMethodInvalid(exc.message, param="setup_future_usage") from exc
        except Retryable as exc:
            raise GatewayUnavailableError() from exc
    return {}


def _create_claimed(
    *, client: User, claim: KeyClaim[Payment], fields: dict[str, Any], confirm: bool, source: str
) -> Payment:
    """Claim the request's key and insert the payment in one transaction (or find what a retried request started).

    When the assessor finds its preparation stale (`RiskPreparationStale`), it all rolls back and runs again.
    """
    for attempt in _ATTEMPTS:
        risk = _risk_prepared(fields, client)
        try:
            with transaction.atomic(), batched():  # the payment and the rows written with it go in one statement
                # The claim's statement also takes the risk rules' identity locks and draws the payment's id.
                fresh = claim.claim(locks=risk.prepared.lock_keys, reserve=Payment)
                if not fresh:  # a retry after a 5xx: resume its payment, if it got that far
                    found = Payment.objects.filter(client=client, idempotency_key=claim.reference).first()
                    if found is not None:
                        return found
                payment, verdict = _insert_assessed(
                    client=client,
                    fields={**fields, "idempotency_key": claim.reference},
                    confirm=confirm,
                    source=source,
                    risk=risk,
                    locks_held=True,
                    reserved_id=claim.reserved,
                )
        except RiskPreparationStale:
            if attempt == _ATTEMPTS[-1]:
                raise
            continue
        _log_created(payment, verdict, source)
        return remember_as_committed(payment)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _create_assessed(*, client: User, fields: dict[str, Any], confirm: bool, source: str) -> Payment:
    """Assess the payment and insert it with its history and events, in one transaction (a service call's key).

    A concurrent call with the same key loses on the unique (client, key) and returns the winner's payment.
    When the assessor finds its preparation stale (`RiskPreparationStale`), it all rolls back and runs again.
    """
    for attempt in _ATTEMPTS:
        risk = _risk_prepared(fields, client)
        try:
            with transaction.atomic(), batched():
                payment, verdict = _insert_assessed(
                    client=client, fields=fields, confirm=confirm, source=source, risk=risk
                )
        except RiskPreparationStale:
            if attempt == _ATTEMPTS[-1]:
                raise
            continue
        except IntegrityError:
            if not fields["idempotency_key"]:
                raise
            return Payment.objects.get(client=client, idempotency_key=fields["idempotency_key"])
        _log_created(payment, verdict, source)
        return remember_as_committed(payment)
    raise AssertionError("unreachable: the last attempt returns or raises")


# A creation is prepared (risk rules, fingerprint) and run at most twice: again when the assessor says its
# preparation went stale (a card fingerprint blocklisted meanwhile); the second preparation reads what changed.
_ATTEMPTS = (1, 2)


@dataclass(frozen=True)
class _Risk:
    """The gateway a payment is created on, the assessor, and what it prepared before the transaction."""

    gateway_name: str
    assessor: RiskAssessor
    prepared: RiskPreparation


def _risk_prepared(fields: dict[str, Any], client: User) -> _Risk:
    """Ask the assessor to prepare, before any transaction (it may call the gateway)."""
    gateway = get_gateway()
    assessor = risk_assessor()
    method = fields.get("gateway_payment_method") or fields["payment_method"]
    prepared = assessor.prepare(
        gateway=gateway,
        payment_method=method,
        currency=fields["currency"],
        client=client,
        customer_id=fields["customer_id"],
        email=fields["customer_email"],
        ip=fields["customer_ip"],
    )
    return _Risk(gateway_name=gateway.name, assessor=assessor, prepared=prepared)


def _insert_assessed(
    *,
    client: User,
    fields: dict[str, Any],
    confirm: bool,
    source: str,
    risk: _Risk,
    locks_held: bool = False,
    reserved_id: int | None = None,
) -> tuple[Payment, RiskVerdict]:
    """Assess and insert, inside the caller's transaction.

    `locks_held`: the transaction took the assessor's `lock_keys` already. `reserved_id`: the payment's id,
    drawn before (`KeyClaim.claim(reserve=Payment)`): its INSERT then waits in the caller's `batched()` block
    and goes with its audit entry, assessment, history and event, in one statement.

    block → the payment is `failed` with `failure_code: blocked` and no gateway call is recorded;
    review → manual capture is forced, the hold is pending and `payment.review_opened` is written.
    The gateway call to make is recorded with the row: `create_confirm` (one call) when a confirm
    with a payment method was asked, else `create`.
    """
    initial = S.REQUIRES_CONFIRMATION if fields["payment_method"] else S.REQUIRES_PAYMENT_METHOD
    assessor, prepared = risk.assessor, risk.prepared
    verdict = assessor.assess(
        RiskRequest(
            client=client,
            amount=fields["amount"],
            currency=fields["currency"],
            customer_id=fields["customer_id"],
            email=fields["customer_email"],
            ip=fields["customer_ip"],
            card_fingerprint=prepared.card_fingerprint,
            prepared=prepared,
            locks_held=locks_held,
        )
    )
    blocked = verdict.decision == Decision.BLOCK
    held = verdict.decision == Decision.REVIEW
    operation = GatewayOperation.CREATE_CONFIRM if confirm and fields["payment_method"] else GatewayOperation.CREATE
    payment = payment_insert(
        Payment(
            id=reserved_id,
            client=client,
            status=initial,
            gateway=risk.gateway_name,
            pending_operation="" if blocked else operation,
            pending_operation_at=None if blocked else timezone.now(),
            risk_score=verdict.score,
            risk_level=verdict.level,
            review_state=ReviewState.PENDING if held else ReviewState.NONE,
            review_reasons=list(verdict.reasons) if held else [],
            **{**fields, **({"capture_method": CaptureMethod.MANUAL} if held else {})},
        )
    )
    assessor.record(payment=payment, verdict=verdict, card_fingerprint=prepared.card_fingerprint)
    payment_status_initial(payment, source=source)
    if blocked:
        payment_status_change(
            payment,
            S.FAILED,
            source=source,
            reason="blocked by risk rules",
            failure_code=PaymentBlocked.default_code,
            failure_message=PaymentBlocked.default_message,
        )
    return payment, verdict


def _log_created(payment: Payment, verdict: RiskVerdict, source: str) -> None:
    logger.info(
        "Payment created",
        extra={
            "payment": payment.public_id,
            "amount": format_amount(payment.amount, payment.currency),
            "source": source,
            "risk": verdict.decision,
        },
    )
