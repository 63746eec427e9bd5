"""An offline gateway that behaves like Stripe's test mode for Stripe's test payment-method tokens.

State lives in Redis (the cache's, so a web process and a worker see the same intents; in this process's
memory when the cache is not Redis, as in `make run`): see `gateways.simulator.store`. Every call costs at
most two round trips to Redis, one Lua script each, whatever the number of intents. It honours idempotency
keys like Stripe: the same key returns the first outcome and moves no money twice, also when calls with one
key race. Tests and demos can complete a 3-D Secure challenge (`complete_action`) and inject faults
(`inject_fault`): a timeout after the work was done (the answer was lost), a timeout before it, or an outage.
`SIMULATOR_LATENCY_MS` adds a real gateway's answer time to each call.
"""

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import redis
from django.conf import settings

from gateways.base import (
    ActionRequired,
    Declined,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    IntentResult,
    Permanent,
    RefundResult,
)
from gateways.simulator.store import INTENT_INDEX, REFUND_INDEX, Store, get_store

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
_ATTEMPTS = 20  # compare-and-set rounds before a call on a hotly contended intent gives up (retryable)
_PAGE_SIZE = 500  # intents or refunds per round trip when listing

T = TypeVar("T")


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


def _micros(moment: datetime) -> int:
    """A time as whole microseconds since the epoch (exact in a sorted set's double score)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // (datetime.resolution)


def _network_latency() -> None:
    """A real gateway's round trip (`SIMULATOR_LATENCY_MS`, 0 by default) for load tests against the sandbox."""
    latency_ms = getattr(settings, "SIMULATOR_LATENCY_MS", 0)
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)


def _store_call(request: Callable[[], T]) -> T:
    """Call the store; Redis failing is the sandbox failing, with the gateway's retryable errors."""
    try:
        return request()
    except redis.TimeoutError as exc:  # the step may have run: repeat the call with the same key
        raise GatewayTimeout("The simulated gateway did not answer in time.", code="gateway_timeout") from exc
    except redis.RedisError as exc:
        raise GatewayUnavailable("The simulated gateway is unavailable.", code="gateway_unavailable") from exc


def _step(spec: dict[str, Any]) -> dict[str, Any]:
    return _store_call(lambda: _store().step(spec))


def _store() -> Store:
    return get_store()


def _store_page(index: str, records: str, low: int, high: int, limit: int) -> list[tuple[str, int, str]]:
    return _store().page(index, records, low, high, limit)


@dataclass
class _Outcome:
    """What a call decided: its result, or a decline (recorded like a result), and the writes that make it so."""

    result: IntentResult | RefundResult | None = None
    declined: Declined | None = None
    write: list[list[str]] = field(default_factory=list)  # [hash, field, value]
    index: list[list[str]] = field(default_factory=list)  # [sorted set, score, member]
    incr: list[list[str]] = field(default_factory=list)  # [hash, field, amount]

    def spec(self, *, record: bool = True) -> dict[str, Any]:
        spec: dict[str, Any] = {"write": self.write, "index": self.index, "incr": self.incr}
        if not record:
            return spec
        if self.declined is not None:
            intent = self.declined.intent
            stored = {
                "kind": "declined",
                "message": self.declined.message,
                "code": self.declined.code,
                "intent": _dump(intent) if intent else None,
            }
        elif isinstance(self.result, RefundResult):
            stored = {"kind": "refund", "value": _dump_refund(self.result)}
        elif isinstance(self.result, IntentResult):
            stored = {"kind": "intent", "value": _dump(self.result)}
        else:
            raise TypeError("an outcome to record needs a result or a decline")
        return spec | {"record": json.dumps(stored), "declined": self.declined is not None}

    def give(self) -> Any:
        if self.declined is not None:
            raise self.declined
        return self.result


def _put_intent(intent: IntentResult, *, created: datetime | None = None) -> _Outcome:
    """Write the intent; a new one (`created`) also joins the index by created time."""
    outcome = _Outcome(result=intent, write=[["intents", intent.reference, json.dumps(_dump(intent))]])
    if created is not None:
        outcome.index.append([INTENT_INDEX, str(_micros(created)), intent.reference])
    return outcome


def _intent_from(record: str, reference: str) -> IntentResult:
    if not record:
        raise Permanent(f"No such payment_intent: '{reference}'")
    return _load(json.loads(record))


def _replayed(stored: str) -> Any:
    record = json.loads(stored)
    if record["kind"] == "declined":
        intent = _load(record["intent"]) if record["intent"] else None
        raise Declined(record["message"], code=record["code"], intent=intent)
    if record["kind"] == "refund":
        return _load_refund(record["value"])
    return _load(record["value"])


def _fault(kind: str) -> GatewayError:
    if kind == "unavailable":
        return GatewayUnavailable("The simulated gateway is unavailable (503).")
    if kind == "permanent":
        return Permanent("The simulated gateway refused the request.")
    return GatewayTimeout("The simulated gateway did not answer in time.")


class SimulatorGateway:
    """The `Gateway` protocol, offline."""

    name = "simulator"

    # --- test and demo controls --------------------------------------------------------------
    @staticmethod
    def inject_fault(operation: str, kind: str, times: int = 1) -> None:
        """Make the next `times` calls of `operation` (e.g. "confirm_intent") fail with `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
        if times > 0:
            _store_call(lambda: _store().push_faults(operation, [kind] * times))

    @staticmethod
    def clear_faults() -> None:
        _store_call(lambda: _store().clear_faults())

    @staticmethod
    def call_count(operation: str) -> int:
        """Calls that reached the simulator for `operation`, replays included."""
        return _store_call(lambda: _store().counter("calls:" + operation))

    @staticmethod
    def calls_for_key(idempotency_key: str) -> int:
        """Calls made with one idempotency key (e.g. `pay_X:confirm`) in the last 24 hours, replays included."""
        return _store_call(lambda: _store().calls_for_key(idempotency_key))

    @staticmethod
    def performed_count(operation: str) -> int:
        """Operations that really happened (moved state or money), idempotent replays excluded."""
        return _store_call(lambda: _store().counter("performed:" + operation))

    def complete_action(self, *, reference: str, succeed: bool = True) -> IntentResult:
        """Finish (or fail) the customer's 3-D Secure challenge, as the customer's browser would."""

        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], reference)
            if intent.status != "requires_action":
                raise Permanent(f"Intent {reference} is {intent.status}, not requires_action.")
            if succeed:
                return _put_intent(self._authorize(intent))
            failed = replace(
                intent,
                status="requires_payment_method",
                failure_code="authentication_failed",
                failure_message="The customer failed 3-D Secure authentication.",
            )
            return _put_intent(failed)

        key, reads = {"op": "complete_action"}, [["intents", reference]]
        return self._transact(key, reads, _step(key | {"read": reads})["values"], decide, record=False)

    # --- protocol ----------------------------------------------------------------------------
    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        capture_method: str,
        payment_method: str,
        confirm: bool = False,
        metadata: dict[str, str],
        description: str,
        idempotency_key: str,
    ) -> IntentResult:
        """Create an intent; with `confirm`, confirm it with `payment_method` in the same call (one round trip)."""

        def decide(_: Sequence[str]) -> _Outcome:
            if confirm:
                self._check_token(payment_method)
            reference, created = "pi_sim_" + secrets.token_hex(12), datetime.now(tz=UTC)
            intent = IntentResult(
                reference=reference,
                status="requires_confirmation" if payment_method else "requires_payment_method",
                amount=amount,
                currency=currency,
                capture_method=capture_method,
                client_secret=f"{reference}_secret_{secrets.token_hex(8)}",
                payment_method=payment_method,
                created_at=created,
                metadata=dict(metadata),
            )
            return (
                self._confirmed(intent, payment_method, created=created)
                if confirm
                else _put_intent(intent, created=created)
            )

        return self._call("create_intent", idempotency_key, [], decide)

    def confirm_intent(self, *, reference: str, payment_method: str, idempotency_key: str) -> IntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], reference)
            if intent.status not in {"requires_payment_method", "requires_confirmation"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be confirmed.")
            token = payment_method or intent.payment_method
            self._check_token(token)
            return self._confirmed(intent, token)

        return self._call("confirm_intent", idempotency_key, [["intents", reference]], decide)

    def capture_intent(self, *, reference: str, amount: int | None, idempotency_key: str) -> IntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], reference)
            if intent.status == "requires_action":
                raise ActionRequired("The customer has not completed authentication.")
            if intent.status != "requires_capture":
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be captured.")
            to_capture = intent.amount_capturable if amount is None else amount
            if not 0 < to_capture <= intent.amount_capturable:
                raise Permanent("The amount to capture must be positive and at most the amount capturable.")
            return _put_intent(replace(intent, status="succeeded", amount_received=to_capture, amount_capturable=0))

        return self._call("capture_intent", idempotency_key, [["intents", reference]], decide)

    def cancel_intent(self, *, reference: str, reason: str, idempotency_key: str) -> IntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], reference)
            if intent.status in {"succeeded", "canceled"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be canceled.")
            return _put_intent(replace(intent, status="canceled", amount_capturable=0))

        return self._call("cancel_intent", idempotency_key, [["intents", reference]], decide)

    def card_fingerprint(self, *, payment_method: str) -> str:
        """Like Stripe's test cards, each known token stands for one card with a fixed fingerprint."""
        _step({"op": "card_fingerprint", "count": True})
        if payment_method not in KNOWN_TOKENS:
            return ""
        return "fp_sim_" + hashlib.sha256(payment_method.encode()).hexdigest()[:16]

    def retrieve_intent(self, *, reference: str) -> IntentResult:
        _network_latency()
        answer = _step({"op": "retrieve_intent", "count": True, "faults": True, "read": [["intents", reference]]})
        if "fault" in answer:
            raise _fault(answer["fault"])
        return _intent_from(answer["values"][0], reference)

    def create_refund(
        self,
        *,
        intent_reference: str,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], intent_reference)
            if intent.status != "succeeded":
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be refunded.")
            refunded = int(values[1] or 0)
            if amount <= 0 or refunded + amount > intent.amount_received:
                raise Permanent("Refund amount is greater than the unrefunded amount of the charge.")
            created = datetime.now(tz=UTC)
            refund = RefundResult(
                reference="re_sim_" + secrets.token_hex(12),
                intent_reference=intent_reference,
                status="succeeded",
                amount=amount,
                currency=intent.currency,
                created_at=created,
                metadata=dict(metadata),
            )
            return _Outcome(
                result=refund,
                write=[["refunds", refund.reference, json.dumps(_dump_refund(refund))]],
                index=[[REFUND_INDEX, str(_micros(created)), refund.reference]],
                incr=[["refunded", intent_reference, str(amount)]],
            )

        reads = [["intents", intent_reference], ["refunded", intent_reference]]
        return self._call("create_refund", idempotency_key, reads, decide)

    def retrieve_refund(self, *, reference: str) -> RefundResult:
        record = _step({"op": "retrieve_refund", "count": True, "read": [["refunds", reference]]})["values"][0]
        if not record:
            raise Permanent(f"No such refund: '{reference}'")
        return _load_refund(json.loads(record))

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        """Every intent created in [created_gte, created_lt), oldest first."""
        for reference, record in self._scan(INTENT_INDEX, "intents", created_gte, created_lt):
            yield _intent_from(record, reference)

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]:
        """Every refund created in [created_gte, created_lt), oldest first."""
        for reference, record in self._scan(REFUND_INDEX, "refunds", created_gte, created_lt):
            if not record:
                raise Permanent(f"No such refund: '{reference}'")
            yield _load_refund(json.loads(record))

    # --- internals ---------------------------------------------------------------------------
    def _call(
        self, operation: str, idempotency_key: str, reads: list[list[str]], decide: Callable[[Sequence[str]], _Outcome]
    ) -> Any:
        """Run `decide` once per idempotency key; replay the stored outcome afterwards.

        Two steps: the first counts the call, applies injected faults, replays a stored outcome, marks the key
        in progress (a concurrent call with the same key is refused, like Stripe's 409) and reads what
        `decide` needs; the gateway's latency passes; the second writes what `decide` returned, stores the
        outcome and drops the mark (see `_transact`).
        """
        key = {"op": operation, "idem": idempotency_key}
        answer = _step(key | {"count": True, "faults": True, "after": True, "lock": True, "read": reads})
        _network_latency()  # the gateway at work, with the key marked in progress
        if "values" not in answer:
            return self._finish(answer, None)  # a fault, a call in progress (409) or a replay
        return self._transact(key, reads, answer["values"], decide, record=True)

    def _transact(
        self,
        key: dict[str, Any],
        reads: list[list[str]],
        values: Sequence[str],
        decide: Callable[[Sequence[str]], _Outcome],
        *,
        record: bool,
    ) -> Any:
        """Write what `decide` makes of `values` if they are unchanged (compare-and-set), else read again.

        So calls on one intent with different keys serialise: none is lost or decided on a stale state.
        """
        release = key | {"unlock": True}
        for _ in range(_ATTEMPTS):
            try:
                outcome = decide(values)
            except GatewayError:  # refused (wrong state, unknown object): nothing changes, nothing is stored
                if key.get("idem"):
                    _step(release)
                raise
            expect = [[*read, value] for read, value in zip(reads, values, strict=True)]
            answer = _step(release | {"after": True, "expect": expect} | outcome.spec(record=record))
            if not answer.get("conflict"):
                return self._finish(answer, outcome)
            answer = _step(key | {"read": reads})
            if "values" not in answer:  # our mark expired and another call with the key finished meanwhile
                return self._finish(answer, None)
            values = answer["values"]
        if key.get("idem"):
            _step(release)
        raise GatewayUnavailable("The simulated gateway is busy with this object; try again.")

    @staticmethod
    def _finish(answer: dict[str, Any], outcome: _Outcome | None) -> Any:
        if "fault" in answer:
            raise _fault(answer["fault"])
        if answer.get("busy"):
            raise GatewayUnavailable("A request with this idempotency key is in progress (409).")
        if "replay" in answer:
            result = _replayed(answer["replay"])  # a stored decline raises here
            if answer.get("timeout"):
                raise _fault("timeout")
            return result
        if outcome is None:
            return None
        if answer.get("timeout") and outcome.declined is None:
            raise _fault("timeout")  # the work is done, the answer is lost
        return outcome.give()

    @staticmethod
    def _check_token(token: str) -> None:
        if not token:
            raise Permanent("You must provide a payment method to confirm this PaymentIntent.")
        if token not in KNOWN_TOKENS:
            raise Permanent(f"No such PaymentMethod: '{token}'")

    def _confirmed(self, intent: IntentResult, token: str, *, created: datetime | None = None) -> _Outcome:
        """Confirm with a known test token: authorised (or captured), declined, or waiting for 3-D Secure."""
        intent = replace(intent, payment_method=token, failure_code="", failure_message="")
        if token in DECLINES:
            code, message = DECLINES[token]
            intent = replace(intent, status="requires_payment_method", failure_code=code, failure_message=message)
            outcome = _put_intent(intent, created=created)
            outcome.declined = Declined(message, code=code, intent=intent)
            return outcome
        intent = replace(intent, status="requires_action") if token in THREE_D_SECURE else self._authorize(intent)
        return _put_intent(intent, created=created)

    @staticmethod
    def _authorize(intent: IntentResult) -> IntentResult:
        if intent.capture_method == "manual":
            return replace(intent, status="requires_capture", amount_capturable=intent.amount)
        return replace(intent, status="succeeded", amount_received=intent.amount, amount_capturable=0)

    @staticmethod
    def _scan(index: str, records: str, created_gte: datetime, created_lt: datetime) -> Iterator[tuple[str, str]]:
        """(reference, record) for each member of `index` in the window, a page per round trip."""
        low, high = _micros(created_gte), _micros(created_lt)
        seen_at_low: set[str] = set()  # members already given with the score `low` (pages restart there)
        while True:
            limit = _PAGE_SIZE + len(seen_at_low)
            rows = _store_call(partial(_store_page, index, records, low, high, limit))
            for reference, score, record in rows:
                if score != low or reference not in seen_at_low:
                    yield reference, record
            if len(rows) < limit:
                return
            last = rows[-1][1]
            seen_at_low = (seen_at_low if last == low else set()) | {ref for ref, score, _ in rows if score == last}
            low = last
