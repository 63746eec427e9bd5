"""An offline gateway that behaves like Stripe's test mode for Stripe's test payment-method tokens.

State lives in Django's cache (Redis in production-like setups, local memory in `make run`), so a
web process and a worker see the same intents. It honours idempotency keys like Stripe: the same
key returns the first outcome and moves no money twice. Tests and demos can complete a 3-D Secure
challenge (`complete_action`) and inject faults (`inject_fault`): a timeout after the work was
done (the answer was lost), a timeout before it, or an outage.
"""

import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache

from gateways.base import (
    ActionRequired,
    Declined,
    GatewayTimeout,
    GatewayUnavailable,
    IntentResult,
    Permanent,
    RefundResult,
)

SUCCEEDING = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit", "pm_card_discover"}
DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": ("processing_error", "An error occurred while processing your card."),
}
THREE_D_SECURE = {"pm_card_threeDSecure2Required", "pm_card_authenticationRequired"}
KNOWN_TOKENS = SUCCEEDING | set(DECLINES) | THREE_D_SECURE

FAULT_KINDS = {"timeout", "timeout_before", "unavailable", "permanent"}
_PREFIX = "gwsim:"
_FOREVER = None  # cache timeout: keep


def _key(*parts: str) -> str:
    return _PREFIX + ":".join(parts)


def _dump(intent: IntentResult) -> dict[str, Any]:
    data = asdict(intent)
    data["created_at"] = intent.created_at.isoformat() if intent.created_at else None
    return data


def _load(data: dict[str, Any]) -> IntentResult:
    data = dict(data)
    data["created_at"] = datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None
    return IntentResult(**data)


def _dump_refund(refund: RefundResult) -> dict[str, Any]:
    data = asdict(refund)
    data["created_at"] = refund.created_at.isoformat() if refund.created_at else None
    return data


def _load_refund(data: dict[str, Any]) -> RefundResult:
    data = dict(data)
    data["created_at"] = datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None
    return RefundResult(**data)


def _network_latency() -> None:
    """A real gateway's round trip (`SIMULATOR_LATENCY_MS`, 0 by default) for load tests against the sandbox."""
    latency_ms = getattr(settings, "SIMULATOR_LATENCY_MS", 0)
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)


class SimulatorGateway:
    """The `Gateway` protocol, offline."""

    name = "simulator"

    # --- test and demo controls --------------------------------------------------------------
    @staticmethod
    def inject_fault(operation: str, kind: str, times: int = 1) -> None:
        """Make the next `times` calls of `operation` (e.g. "confirm_intent") fail with `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
        faults = cache.get(_key("faults")) or {}
        faults.setdefault(operation, []).extend([kind] * times)
        cache.set(_key("faults"), faults, _FOREVER)

    @staticmethod
    def clear_faults() -> None:
        cache.delete(_key("faults"))

    @staticmethod
    def call_count(operation: str) -> int:
        """Calls that reached the simulator for `operation`, replays included."""
        return cache.get(_key("calls", operation)) or 0

    @staticmethod
    def calls_for_key(idempotency_key: str) -> int:
        """Calls made with one idempotency key (e.g. `pay_X:confirm`), replays included."""
        return cache.get(_key("calls-key", idempotency_key)) or 0

    @staticmethod
    def performed_count(operation: str) -> int:
        """Operations that really happened (moved state or money), idempotent replays excluded."""
        return cache.get(_key("performed", operation)) or 0

    def complete_action(self, *, reference: str, succeed: bool = True) -> IntentResult:
        """Finish (or fail) the customer's 3-D Secure challenge, as the customer's browser would."""
        intent = self._get(reference)
        if intent.status != "requires_action":
            raise Permanent(f"Intent {reference} is {intent.status}, not requires_action.")
        if succeed:
            intent = self._authorize(intent)
        else:
            intent = replace(
                intent,
                status="requires_payment_method",
                failure_code="authentication_failed",
                failure_message="The customer failed 3-D Secure authentication.",
            )
        self._put(intent)
        return intent

    # --- protocol ----------------------------------------------------------------------------
    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        capture_method: str,
        payment_method: str,
        metadata: dict[str, str],
        description: str,
        idempotency_key: str,
    ) -> IntentResult:
        def perform() -> IntentResult:
            reference = "pi_sim_" + secrets.token_hex(12)
            intent = IntentResult(
                reference=reference,
                status="requires_confirmation" if payment_method else "requires_payment_method",
                amount=amount,
                currency=currency,
                capture_method=capture_method,
                client_secret=f"{reference}_secret_{secrets.token_hex(8)}",
                payment_method=payment_method,
                created_at=datetime.now(tz=UTC),
                metadata=dict(metadata),
            )
            self._put(intent, new=True)
            return intent

        return self._call("create_intent", idempotency_key, perform)

    def confirm_intent(self, *, reference: str, payment_method: str, idempotency_key: str) -> IntentResult:
        def perform() -> IntentResult:
            intent = self._get(reference)
            if intent.status not in {"requires_payment_method", "requires_confirmation"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be confirmed.")
            token = payment_method or intent.payment_method
            if not token:
                raise Permanent("You must provide a payment method to confirm this PaymentIntent.")
            if token not in KNOWN_TOKENS:
                raise Permanent(f"No such PaymentMethod: '{token}'")
            intent = replace(intent, payment_method=token, failure_code="", failure_message="")
            if token in DECLINES:
                code, message = DECLINES[token]
                intent = replace(intent, status="requires_payment_method", failure_code=code, failure_message=message)
                self._put(intent)
                raise Declined(message, code=code, intent=intent)
            intent = replace(intent, status="requires_action") if token in THREE_D_SECURE else self._authorize(intent)
            self._put(intent)
            return intent

        return self._call("confirm_intent", idempotency_key, perform)

    def capture_intent(self, *, reference: str, amount: int | None, idempotency_key: str) -> IntentResult:
        def perform() -> IntentResult:
            intent = self._get(reference)
            if intent.status == "requires_action":
                raise ActionRequired("The customer has not completed authentication.")
            if intent.status != "requires_capture":
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be captured.")
            to_capture = intent.amount_capturable if amount is None else amount
            if not 0 < to_capture <= intent.amount_capturable:
                raise Permanent("The amount to capture must be positive and at most the amount capturable.")
            intent = replace(intent, status="succeeded", amount_received=to_capture, amount_capturable=0)
            self._put(intent)
            return intent

        return self._call("capture_intent", idempotency_key, perform)

    def cancel_intent(self, *, reference: str, reason: str, idempotency_key: str) -> IntentResult:
        def perform() -> IntentResult:
            intent = self._get(reference)
            if intent.status in {"succeeded", "canceled"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be canceled.")
            intent = replace(intent, status="canceled", amount_capturable=0)
            self._put(intent)
            return intent

        return self._call("cancel_intent", idempotency_key, perform)

    def card_fingerprint(self, *, payment_method: str) -> str:
        """Like Stripe's test cards, each known token stands for one card with a fixed fingerprint."""
        self._count("card_fingerprint")
        if payment_method not in KNOWN_TOKENS:
            return ""
        return "fp_sim_" + hashlib.sha256(payment_method.encode()).hexdigest()[:16]

    def retrieve_intent(self, *, reference: str) -> IntentResult:
        self._count("retrieve_intent")
        _network_latency()
        self._maybe_fail("retrieve_intent", before=True)
        return self._get(reference)

    def create_refund(
        self,
        *,
        intent_reference: str,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        def perform() -> RefundResult:
            intent = self._get(intent_reference)
            if intent.status != "succeeded":
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be refunded.")
            refunded = cache.get(_key("refunded", intent_reference)) or 0
            if amount <= 0 or refunded + amount > intent.amount_received:
                raise Permanent("Refund amount is greater than the unrefunded amount of the charge.")
            cache.set(_key("refunded", intent_reference), refunded + amount, _FOREVER)
            refund = RefundResult(
                reference="re_sim_" + secrets.token_hex(12),
                intent_reference=intent_reference,
                status="succeeded",
                amount=amount,
                currency=intent.currency,
                created_at=datetime.now(tz=UTC),
                metadata=dict(metadata),
            )
            cache.set(_key("refund", refund.reference), _dump_refund(refund), _FOREVER)
            self._append_index("refunds", refund.reference)
            return refund

        return self._call("create_refund", idempotency_key, perform)

    def retrieve_refund(self, *, reference: str) -> RefundResult:
        self._count("retrieve_refund")
        data = cache.get(_key("refund", reference))
        if data is None:
            raise Permanent(f"No such refund: '{reference}'")
        return _load_refund(data)

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        for reference in cache.get(_key("index", "intents")) or []:
            intent = self._get(reference)
            if intent.created_at and created_gte <= intent.created_at < created_lt:
                yield intent

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]:
        for reference in cache.get(_key("index", "refunds")) or []:
            refund = self.retrieve_refund(reference=reference)
            if refund.created_at and created_gte <= refund.created_at < created_lt:
                yield refund

    # --- internals ---------------------------------------------------------------------------
    def _call(self, operation: str, idempotency_key: str, perform: Any) -> Any:
        """Run `perform` once per idempotency key; replay the stored outcome afterwards.

        Like Stripe, a second request with a key whose first request is still running is refused
        (409 there, a retryable error here) instead of running concurrently.
        """
        self._count(operation)
        self._incr(_key("calls-key", idempotency_key))
        _network_latency()
        self._maybe_fail(operation, before=True)
        lock = _key("lock", idempotency_key)
        if not cache.add(lock, 1, 30):
            raise GatewayUnavailable("A request with this idempotency key is in progress (409).")
        try:
            result = self._replay_or_perform(operation, idempotency_key, perform)
        finally:
            cache.delete(lock)
        self._maybe_fail(operation, before=False)
        return result

    def _replay_or_perform(self, operation: str, idempotency_key: str, perform: Any) -> Any:
        stored = cache.get(_key("idem", idempotency_key))
        if stored is not None:
            if stored["kind"] == "declined":
                intent = _load(stored["intent"]) if stored["intent"] else None
                raise Declined(stored["message"], code=stored["code"], intent=intent)
            if stored["kind"] == "refund":
                return _load_refund(stored["value"])
            return _load(stored["value"])
        try:
            result = perform()
        except Declined as exc:
            dumped = _dump(exc.intent) if exc.intent else None
            record = {"kind": "declined", "message": exc.message, "code": exc.code, "intent": dumped}
            cache.set(_key("idem", idempotency_key), record, 86400)
            self._incr(_key("performed", operation))
            raise
        value = _dump_refund(result) if isinstance(result, RefundResult) else _dump(result)
        kind = "refund" if isinstance(result, RefundResult) else "intent"
        cache.set(_key("idem", idempotency_key), {"kind": kind, "value": value}, 86400)
        self._incr(_key("performed", operation))
        return result

    def _maybe_fail(self, operation: str, *, before: bool) -> None:
        faults = cache.get(_key("faults")) or {}
        queue = faults.get(operation) or []
        if not queue:
            return
        kind = queue[0]
        if before and kind == "timeout":  # a lost answer: the work happens, then the "timeout"
            return
        if not before and kind != "timeout":
            return
        queue.pop(0)
        cache.set(_key("faults"), faults, _FOREVER)
        if kind == "unavailable":
            raise GatewayUnavailable("The simulated gateway is unavailable (503).")
        if kind == "permanent":
            raise Permanent("The simulated gateway refused the request.")
        raise GatewayTimeout("The simulated gateway did not answer in time.")

    def _authorize(self, intent: IntentResult) -> IntentResult:
        if intent.capture_method == "manual":
            return replace(intent, status="requires_capture", amount_capturable=intent.amount)
        return replace(intent, status="succeeded", amount_received=intent.amount, amount_capturable=0)

    def _get(self, reference: str) -> IntentResult:
        data = cache.get(_key("intent", reference))
        if data is None:
            raise Permanent(f"No such payment_intent: '{reference}'")
        return _load(data)

    def _put(self, intent: IntentResult, *, new: bool = False) -> None:
        cache.set(_key("intent", intent.reference), _dump(intent), _FOREVER)
        if new:
            self._append_index("intents", intent.reference)

    def _append_index(self, name: str, reference: str) -> None:
        index = cache.get(_key("index", name)) or []
        index.append(reference)
        cache.set(_key("index", name), index, _FOREVER)

    def _count(self, operation: str) -> None:
        self._incr(_key("calls", operation))

    @staticmethod
    def _incr(key: str) -> None:
        cache.add(key, 0, _FOREVER)
        cache.incr(key)
