"""An offline gateway that behaves like Stripe's test mode for Stripe's test payment-method tokens.

State lives in Redis (the cache's, so a web process and a worker see the same intents; in this process's
memory when the cache is not Redis, as in `make run`): see `gateways.simulator.store`. Every call costs at
most two round trips to Redis, one Lua script each, whatever the number of intents; one when it reads nothing
stored (a create with a test card) and there is no latency to model (`SIMULATOR_LATENCY_MS` 0). It honours idempotency
keys like Stripe: the same key returns the first outcome and moves no money twice, also when calls with one
key race. Tests and demos can complete a 3-D Secure challenge (`complete_action`, for payment and setup intents),
confirm a setup intent as Stripe.js would (`confirm_setup_intent`) and inject faults (`inject_fault`, on any
operation): a timeout after the work was done (the answer was lost), a timeout before it, or an outage.

Customers and saved payment methods behave like Stripe's: attaching a test token (`pm_card_visa`) clones it into
a saved `pm_sim_...` with the test card's details (brand, last4, a fingerprint fixed per test card); a decline
token is refused at attach (Stripe's card check); a detached method, or another customer's, cannot be charged;
`setup_future_usage` with a customer saves the card once the payment succeeds; deleting a customer detaches its
methods. `pm_card_authenticationRequired` needs 3-D Secure on every charge (off session: declined
`authentication_required`); `pm_card_chargeCustomerFail` attaches and then every charge is declined.
`SIMULATOR_LATENCY_MS` adds a real gateway's answer time to each call.

Disputes (`gateways.disputes.DisputeGateway`, the engine in `gateways.simulator.disputes`): a charge paid with
`pm_card_createDispute` (at once, at capture, or an invoice's) is disputed as it succeeds, one with
`pm_card_createDisputeInquiry` gets an inquiry; their `charge.dispute.*` events wait for
`pending_dispute_events()`, and `close_dispute_as` decides one as the bank would. A charge under a dispute (not
an inquiry) cannot be refunded, as on Stripe (`charge_disputed`).
"""

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import redis
from django.conf import settings

from gateways.base import (
    ActionRequired,
    CardDetails,
    CustomerResult,
    Declined,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    IntentResult,
    PaymentMethodResult,
    Permanent,
    RefundResult,
    SetupIntentResult,
)
from gateways.billing import InvoiceResult, PriceResult, SubscriptionResult
from gateways.disputes import DisputeResult, EvidenceFile, check_evidence
from gateways.simulator import billing
from gateways.simulator import disputes as dispute_engine
from gateways.simulator.store import INTENT_INDEX, REFUND_INDEX, Store, get_store
from gateways.stripe.parsers import parse_dispute

SUCCEEDING = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit", "pm_card_discover"}
DECLINES = {
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": ("processing_error", "An error occurred while processing your card."),
}
THREE_D_SECURE = {"pm_card_threeDSecure2Required", "pm_card_authenticationRequired"}
# Saved without trouble, then every charge is declined (Stripe's 4000000000000341).
CHARGE_FAILS = {"pm_card_chargeCustomerFail": ("card_declined", "Your card was declined.")}
# Succeed, then the charge is disputed at once (gateways.simulator.disputes).
DISPUTED = set(dispute_engine.DISPUTE_TOKENS) | set(dispute_engine.INQUIRY_TOKENS)
KNOWN_TOKENS = SUCCEEDING | set(DECLINES) | THREE_D_SECURE | set(CHARGE_FAILS) | DISPUTED
# The test card each token stands for, as Stripe's test cards are: brand, last4, funding.
TEST_CARDS = {
    "pm_card_visa": ("visa", "4242", "credit"),
    "pm_card_mastercard": ("mastercard", "4444", "credit"),
    "pm_card_amex": ("amex", "8431", "credit"),
    "pm_card_visa_debit": ("visa", "5556", "debit"),
    "pm_card_discover": ("discover", "1117", "credit"),
    "pm_card_chargeDeclined": ("visa", "0002", "credit"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "credit"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", "credit"),
    "pm_card_chargeDeclinedIncorrectCvc": ("visa", "0127", "credit"),
    "pm_card_chargeDeclinedProcessingError": ("visa", "0119", "credit"),
    "pm_card_threeDSecure2Required": ("visa", "3220", "credit"),
    "pm_card_authenticationRequired": ("visa", "3184", "credit"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "credit"),
    **dispute_engine.DISPUTE_TOKENS,
    **dispute_engine.INQUIRY_TOKENS,
}
DETACHED = "-"  # pm-owner of a method detached from its customer (it can never be used again, as on Stripe)

SAVED_METHOD_PREFIX = "pm_sim_"  # the methods this simulator saved (a test token attached is cloned to one)
FAULT_KINDS = {"timeout", "timeout_before", "unavailable", "permanent"}
_ATTEMPTS = 20  # compare-and-set rounds before a call on a hotly contended intent gives up (retryable)
_PAGE_SIZE = 500  # intents or refunds per round trip when listing
_END = datetime(9999, 1, 1, tzinfo=UTC)  # the end of every listing window

T = TypeVar("T")


def _flat_dump(result: IntentResult | RefundResult) -> dict[str, Any]:
    """`asdict(result)` for a result of plain fields and a metadata dict of strings, without its deep copies."""
    data = {name: getattr(result, name) for name in type(result).__dataclass_fields__}
    data["metadata"] = dict(result.metadata)
    data["created_at"] = result.created_at.isoformat() if result.created_at else None
    return data


def _dump(intent: IntentResult) -> dict[str, Any]:
    return _flat_dump(intent)


_INTENT_FIELDS = frozenset(IntentResult.__dataclass_fields__)


def _load(data: dict[str, Any]) -> IntentResult:
    data = {key: value for key, value in data.items() if key in _INTENT_FIELDS}  # not the stored extras
    data["created_at"] = datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None
    return IntentResult(**data)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dump_result(result: CustomerResult | PaymentMethodResult | SetupIntentResult) -> dict[str, Any]:
    data = asdict(result)
    data["created_at"] = result.created_at.isoformat() if result.created_at else None
    return data


def _load_result(kind: str, data: dict[str, Any]) -> CustomerResult | PaymentMethodResult | SetupIntentResult:
    data = dict(data) | {"created_at": _when(data.get("created_at"))}
    if kind == "customer":
        return CustomerResult(**data)
    if kind == "setup_intent":
        return SetupIntentResult(**data)
    card = data.pop("card", None)
    return PaymentMethodResult(**data, card=CardDetails(**card) if card else None)


_RESULT_KINDS = {CustomerResult: "customer", PaymentMethodResult: "payment_method", SetupIntentResult: "setup_intent"}


def _dump_refund(refund: RefundResult) -> dict[str, Any]:
    return _flat_dump(refund)


def _load_refund(data: dict[str, Any]) -> RefundResult:
    data = dict(data)
    data["created_at"] = datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None
    return RefundResult(**data)


def _micros(moment: datetime) -> int:
    """A time as whole microseconds since the epoch (exact in a sorted set's double score)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // (datetime.resolution)


def _latency_ms() -> int:
    return int(getattr(settings, "SIMULATOR_LATENCY_MS", 0))


def _network_latency() -> None:
    """A real gateway's round trip (`SIMULATOR_LATENCY_MS`, 0 by default) for load tests against the sandbox."""
    latency_ms = _latency_ms()
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

    result: (
        IntentResult
        | RefundResult
        | CustomerResult
        | PaymentMethodResult
        | SetupIntentResult
        | SubscriptionResult
        | InvoiceResult
        | PriceResult
        | DisputeResult
        | None
    ) = None
    stored: dict[str, Any] | None = None  # billing: the records the result is made of, replayed from them
    declined: Declined | None = None
    write: list[list[str]] = field(default_factory=list)  # [hash, field, value]
    index: list[list[str]] = field(default_factory=list)  # [sorted set, score, member]
    incr: list[list[str]] = field(default_factory=list)  # [hash, field, amount]
    push: list[list[str]] = field(default_factory=list)  # [list, value]: dispute events queued

    def spec(self, *, record: bool = True) -> dict[str, Any]:
        spec: dict[str, Any] = {"write": self.write, "index": self.index, "incr": self.incr, "push": self.push}
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
        elif self.stored is not None:
            stored = self.stored
        elif isinstance(self.result, RefundResult):
            stored = {"kind": "refund", "value": _dump_refund(self.result)}
        elif isinstance(self.result, IntentResult):
            stored = {"kind": "intent", "value": _dump(self.result)}
        elif isinstance(self.result, CustomerResult | PaymentMethodResult | SetupIntentResult):
            stored = {"kind": _RESULT_KINDS[type(self.result)], "value": _dump_result(self.result)}
        else:
            raise TypeError("an outcome to record needs a result or a decline")
        return spec | {"record": json.dumps(stored), "declined": self.declined is not None}

    def give(self) -> Any:
        if self.declined is not None:
            raise self.declined
        return self.result


def _put_intent(
    intent: IntentResult, *, created: datetime | None = None, extras: dict[str, str] | None = None
) -> _Outcome:
    """Write the intent (with its `extras`: customer, setup_future_usage); a new one (`created`) joins the index."""
    record = _dump(intent) | (extras or {})
    outcome = _Outcome(result=intent, write=[["intents", intent.reference, json.dumps(record)]])
    if created is not None:
        outcome.index.append([INTENT_INDEX, str(_micros(created)), intent.reference])
    return outcome


def _disputed(outcome: _Outcome, intent: IntentResult, token: str) -> _Outcome:
    """A charge of a dispute test card that has just succeeded is disputed at once (see the disputes engine)."""
    if intent.status == "succeeded" and token in DISPUTED:
        dispute, events = dispute_engine.new_dispute(
            intent_reference=intent.reference,
            amount=intent.amount_received,
            currency=intent.currency,
            token=token,
            now=int(time.time()),
        )
        writes, index, push = dispute_engine.writes(dispute, events, new=True)
        outcome.write += writes
        outcome.index += index
        outcome.push += push
    return outcome


def _dispute_outcome(dispute: dict[str, Any], events: list[dict[str, Any]], *, queue: bool = True) -> _Outcome:
    """Keep the changed dispute (and queue its events, unless they are handed to the caller)."""
    writes, index, push = dispute_engine.writes(dispute, events)
    stored = {"kind": "dispute", "value": dispute}
    return _Outcome(result=parse_dispute(dispute), stored=stored, write=writes, index=index, push=push if queue else [])


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
    if record["kind"] == "subscription":
        return billing.subscription_result(record["value"], record["invoice"])
    if record["kind"] == "invoice":
        return billing.invoice_result(record["value"])
    if record["kind"] == "price":
        return billing.price_result(record["value"])
    if record["kind"] == "dispute":
        return parse_dispute(record["value"])
    if record["kind"] in _RESULT_KINDS.values():
        return _load_result(record["kind"], record["value"])
    return _load(record["value"])


def _intent_with_extras(record: str, reference: str) -> tuple[IntentResult, dict[str, str]]:
    intent = _intent_from(record, reference)
    data = json.loads(record)
    return intent, {"customer": data.get("customer") or "", "setup_future_usage": data.get("setup_future_usage") or ""}


def _intent_reads(reference: str, payment_method: str) -> list[list[str]]:
    """The intent, the method it is confirmed with (given, or its own) and that method's owner, its customer."""
    method = payment_method or "@1.payment_method"
    return [["intents", reference], ["payment_methods", method], ["pm-owner", method], ["customers", "@1.customer"]]


def _setup_reads(reference: str, payment_method: str) -> list[list[str]]:
    """The setup intent, its customer, the method it is confirmed with (given, or its own) and that one's owner."""
    method = payment_method or "@1.payment_method"
    reads = [["setup_intents", reference], ["customers", "@1.customer_reference"]]
    return reads + [["payment_methods", method], ["pm-owner", method]]


def _setup_from(record: str, reference: str) -> SetupIntentResult:
    if not record:
        raise _missing("setup_intent", reference)
    data = json.loads(record)
    return SetupIntentResult(**data | {"created_at": _when(data.get("created_at"))})


def _put_setup(setup: SetupIntentResult) -> list[str]:
    return ["setup_intents", setup.reference, json.dumps(_dump_result(setup))]


def _missing(kind: str, reference: str) -> Permanent:
    return Permanent(f"No such {kind}: '{reference}'", code="resource_missing")


def _fingerprint(token: str) -> str:
    return "fp_sim_" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _test_card(token: str) -> CardDetails:
    """The card a test token stands for: Stripe's test card details, valid for a few more years."""
    brand, last4, funding = TEST_CARDS[token]
    year = datetime.now(tz=UTC).year + 3
    return CardDetails(brand, last4, 12, year, funding=funding, country="US", fingerprint=_fingerprint(token))


def _customer_data(record: str, reference: str, *, live: bool = True) -> dict[str, Any]:
    """A customer's stored record; unknown (or, with `live`, deleted) raises `Permanent` as on Stripe."""
    if not record:
        raise _missing("customer", reference)
    data: dict[str, Any] = json.loads(record)
    if live and data.get("deleted"):
        raise _missing("customer", reference)
    return data


def _customer_result(data: dict[str, Any]) -> CustomerResult:
    if data.get("deleted"):
        return CustomerResult(reference=data["reference"], deleted=True)  # Stripe's stub for a deleted customer
    fields = {key: data[key] for key in ("reference", "email", "name", "default_payment_method", "metadata")}
    return CustomerResult(**fields, created_at=_when(data.get("created_at")))


def _put_customer(data: dict[str, Any]) -> list[str]:
    return ["customers", data["reference"], json.dumps(data)]


def _method_result(data: dict[str, Any], owner: str) -> PaymentMethodResult:
    card = data.get("card")
    return PaymentMethodResult(
        reference=data["reference"],
        type=data["type"],
        customer_reference=owner if owner != DETACHED else "",
        card=CardDetails(**card) if card else None,
        created_at=_when(data.get("created_at")),
    )


def _new_method(token: str) -> dict[str, Any]:
    """A saved payment method cloned from a test token (`token` says which test card it is, never shown)."""
    result = PaymentMethodResult(
        reference=SAVED_METHOD_PREFIX + secrets.token_hex(12),
        type="card",
        card=_test_card(token),
        created_at=datetime.now(tz=UTC),
    )
    return _dump_result(result) | {"customer_reference": "", "token": token}


@dataclass
class _Method:
    """The payment method a call uses: which test card (`token`), the saved record and its owner if any."""

    token: str
    saved: dict[str, Any] | None = None
    owner: str = ""  # the customer it is attached to; "" never attached; DETACHED

    @property
    def reference(self) -> str:
        return self.saved["reference"] if self.saved else self.token


def _method(reference: str, record: str, owner: str) -> _Method:
    """A test token, or a saved method (its record and owner as read); unknown raises `Permanent`."""
    if reference in KNOWN_TOKENS:
        return _Method(token=reference)
    if not record:
        raise _missing("PaymentMethod", reference)
    saved = json.loads(record)
    return _Method(token=saved["token"], saved=saved, owner=owner)


def _chargeable(method: _Method, customer: str) -> None:
    """Stripe refuses a detached method and one of another customer (or one attached, used without customer)."""
    if method.owner == DETACHED:
        raise Permanent(
            f"The provided PaymentMethod {method.reference} was detached from a Customer and may not be used again.",
            code="payment_method_unexpected_state",
        )
    if method.owner and method.owner != customer:
        raise Permanent(
            f"The provided PaymentMethod {method.reference} does not belong to the Customer {customer or '(none)'}.",
            code="payment_method_invalid_parameter",
        )


def _attach(method: _Method, customer: dict[str, Any]) -> tuple[dict[str, Any], list[list[str]]]:
    """Save `method` to the customer (a test token is cloned first): the saved record and the writes."""
    saved = method.saved or _new_method(method.token)
    writes = [["pm-owner", saved["reference"], customer["reference"]]]
    if method.saved is None:
        writes.append(["payment_methods", saved["reference"], json.dumps(saved)])
    if saved["reference"] not in customer["methods"]:
        customer["methods"].append(saved["reference"])
        writes.append(_put_customer(customer))
    return saved, writes


def _fault(kind: str) -> GatewayError:
    if kind == "unavailable":
        return GatewayUnavailable("The simulated gateway is unavailable (503).")
    if kind == "permanent":
        return Permanent("The simulated gateway refused the request.")
    return GatewayTimeout("The simulated gateway did not answer in time.")


# --- billing helpers -------------------------------------------------------------------------------------
_DEFAULT_CLOCK = "default"  # the clock of subscriptions created without one
_AUTHENTICATION = ("authentication_required", "Your card was declined. This transaction requires authentication.")
_UNATTACHED = ("payment_method_unexpected_state", "The payment method is not attached to the customer.")


def _clock_name(clock: str) -> str:
    return clock or _DEFAULT_CLOCK


def _clock_now(value: str) -> int:
    """The clock's time in Unix seconds: as stored, or real now the first time the clock is seen."""
    return int(value) if value else int(time.time())


def _charge_failure(token: str) -> tuple[str, str] | None:
    """How an off-session charge of the test card ends: None when it goes through."""
    failure = DECLINES.get(token) or CHARGE_FAILS.get(token)
    if failure is None and token in THREE_D_SECURE:
        return _AUTHENTICATION
    return failure


def _payer_reads(customer: str, method: str, base: int) -> list[list[str]]:
    """Five reads at positions base+1..base+5: the customer, its default method and owner, `method` and owner."""
    default = f"@{base + 1}.default_payment_method"
    return [
        ["customers", customer],
        ["payment_methods", default],
        ["pm-owner", default],
        ["payment_methods", method],
        ["pm-owner", method],
    ]


def _payer(customer: str, method: str, values: Sequence[str]) -> billing.Payer:
    """Who pays (the five values of `_payer_reads`): `method`, else the customer's default payment method."""
    record, owner = values[3], values[4]
    if not method:
        data = json.loads(values[0]) if values[0] else {}
        method, record, owner = data.get("default_payment_method") or "", values[1], values[2]
    if not method:
        return billing.NO_PAYER
    if method in KNOWN_TOKENS:
        return billing.Payer(method, _charge_failure(method), token=method)
    if not record or owner != customer:
        return billing.Payer(method, _UNATTACHED)
    token = json.loads(record)["token"]
    return billing.Payer(method, _charge_failure(token), token=token)


def _check_method(method: str, customer: str, record: str, owner: str) -> None:
    """A default payment method must be a test token or one of the customer's saved methods (as on Stripe)."""
    if method and method not in KNOWN_TOKENS:
        _chargeable(_method(method, record, owner), customer)
        if owner != customer:
            raise Permanent(
                f"The customer does not have a payment method with the ID {method}.", code="resource_missing"
            )


def _final_status() -> str:
    status = getattr(settings, "SIMULATOR_DUNNING_FINAL_STATUS", "canceled")
    if status not in ("canceled", "unpaid"):
        raise Permanent("SIMULATOR_DUNNING_FINAL_STATUS must be 'canceled' or 'unpaid'.")
    return str(status)


def _record(value: str, kind: str, reference: str) -> dict[str, Any]:
    if not value:
        raise _missing(kind, reference)
    data: dict[str, Any] = json.loads(value)
    return data


def _run_outcome(
    run: billing.Run, *, now: int, stored: dict[str, Any], result: Any, extra: list[list[str]] | None = None
) -> _Outcome:
    """The writes of a billing call: its records, and its events kept for the clock's next `advance_clock`."""
    writes, index = run.writes()
    base = time.time_ns() // 1000
    for position, item in enumerate(run.events):
        writes.append(["events", item["id"], json.dumps(item)])
        index.append(["events:" + run.clock, str(base + position), item["id"]])
    return _Outcome(result=result, stored=stored, write=[*writes, *(extra or [])], index=index, push=run.pushes())


def _subscription_outcome(run: billing.Run, sub: dict[str, Any], latest: dict[str, Any] | None, now: int) -> _Outcome:
    result = billing.subscription_result(sub, latest)
    stored = {"kind": "subscription", "value": sub, "invoice": latest}
    run.subscriptions[sub["id"]] = sub
    return _run_outcome(run, now=now, stored=stored, result=result)


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

    def complete_action(self, *, reference: str, succeed: bool = True) -> IntentResult | SetupIntentResult:
        """Finish (or fail) the customer's 3-D Secure challenge, as the customer's browser would.

        For a payment intent (pi_...) or a setup intent (seti_...); a card to be saved is saved on success.
        """
        if reference.startswith("seti_"):
            return self._complete_setup_action(reference, succeed)

        def decide(values: Sequence[str]) -> _Outcome:
            intent, extras = _intent_with_extras(values[0], reference)
            if intent.status != "requires_action":
                raise Permanent(f"Intent {reference} is {intent.status}, not requires_action.")
            if succeed:
                method = _method(intent.payment_method, values[1], values[2])
                return self._authorized(intent, extras, method, values[3], created=None)
            failed = replace(
                intent,
                status="requires_payment_method",
                failure_code="authentication_failed",
                failure_message="The customer failed 3-D Secure authentication.",
            )
            return _put_intent(failed, extras=extras)

        key, reads = {"op": "complete_action"}, _intent_reads(reference, "")
        return self._transact(key, reads, _step(key | {"read": reads})["values"], decide, record=False)

    def _complete_setup_action(self, reference: str, succeed: bool) -> SetupIntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            setup = _setup_from(values[0], reference)
            if setup.status != "requires_action":
                raise Permanent(f"SetupIntent {reference} is {setup.status}, not requires_action.")
            if not succeed:
                failed = replace(setup, status="requires_payment_method", payment_method="")
                return _Outcome(result=failed, write=[_put_setup(failed)])
            customer = _customer_data(values[1], setup.customer_reference)
            saved, writes = _attach(_method(setup.payment_method, values[2], values[3]), customer)
            done = replace(setup, status="succeeded", payment_method=saved["reference"])
            return _Outcome(result=done, write=[*writes, _put_setup(done)])

        key, reads = {"op": "complete_action"}, _setup_reads(reference, "")
        return self._transact(key, reads, _step(key | {"read": reads})["values"], decide, record=False)

    def confirm_setup_intent(self, *, reference: str, payment_method: str = "") -> SetupIntentResult:
        """Confirm a setup intent with a card, as Stripe.js does with its client_secret on the customer's side.

        A card that needs 3-D Secure answers `requires_action` (then `complete_action`); a decline raises `Declined`.
        """

        def decide(values: Sequence[str]) -> _Outcome:
            setup = _setup_from(values[0], reference)
            if setup.status not in {"requires_payment_method", "requires_confirmation"}:
                raise Permanent(
                    f"This SetupIntent's status is {setup.status}; it cannot be confirmed.",
                    code="setup_intent_unexpected_state",
                )
            customer = _customer_data(values[1], setup.customer_reference)
            chosen = payment_method or setup.payment_method
            if not chosen:
                raise Permanent("You must provide a payment method to confirm this SetupIntent.")
            return self._setup_confirmed(setup, _method(chosen, values[2], values[3]), customer)

        key, reads = {"op": "confirm_setup_intent"}, _setup_reads(reference, payment_method)
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
        customer: str = "",
        off_session: bool = False,
        setup_future_usage: str = "",
    ) -> IntentResult:
        """Create an intent; with `confirm`, confirm it with `payment_method` in the same call (one or two round trips).

        A saved method (pm_sim_...) must be the `customer`'s; `setup_future_usage` with a customer saves the card
        when the payment goes through; `off_session` declines a card that needs authentication.
        """
        # A saved method is one of ours (pm_sim_...); any other token is checked at confirm, as it always was.
        saved = payment_method.startswith(SAVED_METHOD_PREFIX)
        reads = [["customers", customer]] if customer else []
        if saved:
            reads += [["payment_methods", payment_method], ["pm-owner", payment_method]]

        def decide(values: Sequence[str]) -> _Outcome:
            if off_session and not confirm:
                raise Permanent("off_session can only be used with confirm=true.", code="parameter_invalid")
            customer_record = ""
            if customer:
                customer_record = values[0]
                _customer_data(customer_record, customer)
            method: _Method | None = None
            if saved:
                method = _method(payment_method, values[-2], values[-1])
                _chargeable(method, customer)
            elif confirm:
                self._check_token(payment_method)
                method = _Method(token=payment_method)
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
            extras = {"customer": customer, "setup_future_usage": setup_future_usage}
            if confirm and method is not None:
                return self._confirmed(
                    intent, extras, method, customer_record, created=created, off_session=off_session
                )
            return _put_intent(intent, created=created, extras=extras)

        return self._call("create_intent", idempotency_key, reads, decide)

    def confirm_intent(self, *, reference: str, payment_method: str, idempotency_key: str) -> IntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent, extras = _intent_with_extras(values[0], reference)
            if intent.status not in {"requires_payment_method", "requires_confirmation"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be confirmed.")
            token = payment_method or intent.payment_method
            if token in KNOWN_TOKENS or not token:
                self._check_token(token)
                method = _Method(token=token)
            else:
                method = _method(token, values[1], values[2])
                _chargeable(method, extras.get("customer", ""))
            return self._confirmed(intent, extras, method, values[3], created=None)

        return self._call("confirm_intent", idempotency_key, _intent_reads(reference, payment_method), decide)

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
            captured = replace(intent, status="succeeded", amount_received=to_capture, amount_capturable=0)
            token = json.loads(values[1])["token"] if values[1] else intent.payment_method
            return _disputed(_put_intent(captured), captured, token)

        reads = [["intents", reference], ["payment_methods", "@1.payment_method"]]
        return self._call("capture_intent", idempotency_key, reads, decide)

    def cancel_intent(self, *, reference: str, reason: str, idempotency_key: str) -> IntentResult:
        def decide(values: Sequence[str]) -> _Outcome:
            intent = _intent_from(values[0], reference)
            if intent.status in {"succeeded", "canceled"}:
                raise Permanent(f"This PaymentIntent's status is {intent.status}; it cannot be canceled.")
            return _put_intent(replace(intent, status="canceled", amount_capturable=0))

        return self._call("cancel_intent", idempotency_key, [["intents", reference]], decide)

    def card_fingerprint(self, *, payment_method: str) -> str:
        """Like Stripe's test cards, each known token (and each method saved from it) has a fixed fingerprint."""
        if payment_method in KNOWN_TOKENS:
            _step({"op": "card_fingerprint", "count": True})
            return _fingerprint(payment_method)
        record = _step({"op": "card_fingerprint", "count": True, "read": [["payment_methods", payment_method]]})
        if not record["values"][0]:
            return ""
        return str((json.loads(record["values"][0]).get("card") or {}).get("fingerprint") or "")

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
            if dispute_engine.blocks_refund(values[2]):
                raise Permanent(
                    f"Charge {dispute_engine.charge_reference(intent_reference)} has been disputed; it cannot be "
                    "refunded.",
                    code="charge_disputed",
                )
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
        reads.append(["dispute-of", intent_reference])  # the status of its dispute, if any
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

    # --- customers -------------------------------------------------------------------------------
    def create_customer(
        self, *, email: str, name: str, metadata: dict[str, str], idempotency_key: str
    ) -> CustomerResult:
        def decide(_: Sequence[str]) -> _Outcome:
            result = CustomerResult(
                reference="cus_sim_" + secrets.token_hex(12),
                email=email,
                name=name,
                metadata=dict(metadata),
                created_at=datetime.now(tz=UTC),
            )
            return _Outcome(result=result, write=[_put_customer(_dump_result(result) | {"methods": []})])

        return self._call("create_customer", idempotency_key, [], decide)

    def update_customer(
        self,
        *,
        reference: str,
        email: str,
        name: str,
        metadata: dict[str, str],
        default_payment_method: str | None,
        idempotency_key: str,
    ) -> CustomerResult:
        """Email and name are set ("" unsets); metadata keys merge as on Stripe ("" deletes one); the default
        payment method must be one of the customer's attached methods."""
        reads = [["customers", reference]]
        if default_payment_method:
            reads.append(["pm-owner", default_payment_method])

        def decide(values: Sequence[str]) -> _Outcome:
            data = _customer_data(values[0], reference)
            if default_payment_method and values[1] != reference:
                raise Permanent(
                    f"The customer does not have a payment method with the ID {default_payment_method}.",
                    code="resource_missing",
                )
            merged = {**data["metadata"], **metadata}
            data |= {"email": email, "name": name, "metadata": {k: v for k, v in merged.items() if v != ""}}
            if default_payment_method is not None:
                data["default_payment_method"] = default_payment_method
            return _Outcome(result=_customer_result(data), write=[_put_customer(data)])

        return self._call("update_customer", idempotency_key, reads, decide)

    def retrieve_customer(self, *, reference: str) -> CustomerResult:
        """The customer (a deleted one as Stripe's stub with `deleted=True`); unknown raises `Permanent`."""
        record = self._read("retrieve_customer", [["customers", reference]])[0]
        return _customer_result(_customer_data(record, reference, live=False))

    def delete_customer(self, *, reference: str, idempotency_key: str) -> CustomerResult:
        """Delete the customer; its saved methods are detached (they can never be charged again)."""

        def decide(values: Sequence[str]) -> _Outcome:
            data = _customer_data(values[0], reference)
            data |= {"deleted": True, "default_payment_method": ""}
            detached = [["pm-owner", method, DETACHED] for method in data["methods"]]
            return _Outcome(result=_customer_result(data), write=[*detached, _put_customer(data)])

        return self._call("delete_customer", idempotency_key, [["customers", reference]], decide)

    # --- setup intents ---------------------------------------------------------------------------
    def create_setup_intent(
        self,
        *,
        customer_reference: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str = "",
        confirm: bool = False,
    ) -> SetupIntentResult:
        reads = [["customers", customer_reference]]
        if payment_method:
            reads += [["payment_methods", payment_method], ["pm-owner", payment_method]]

        def decide(values: Sequence[str]) -> _Outcome:
            customer = _customer_data(values[0], customer_reference)
            if confirm and not payment_method:
                raise Permanent("You must provide a payment method to confirm this SetupIntent.")
            method = _method(payment_method, values[1], values[2]) if payment_method else None
            reference = "seti_sim_" + secrets.token_hex(12)
            setup = SetupIntentResult(
                reference=reference,
                status="requires_confirmation" if payment_method else "requires_payment_method",
                customer_reference=customer_reference,
                client_secret=f"{reference}_secret_{secrets.token_hex(8)}",
                payment_method=payment_method,
                created_at=datetime.now(tz=UTC),
            )
            if confirm and method is not None:
                return self._setup_confirmed(setup, method, customer)
            return _Outcome(result=setup, write=[_put_setup(setup)])

        return self._call("create_setup_intent", idempotency_key, reads, decide)

    def retrieve_setup_intent(self, *, reference: str) -> SetupIntentResult:
        return _setup_from(self._read("retrieve_setup_intent", [["setup_intents", reference]])[0], reference)

    def _setup_confirmed(self, setup: SetupIntentResult, method: _Method, customer: dict[str, Any]) -> _Outcome:
        """Stripe's card check: declined (the intent waits for another card), 3-D Secure, or saved to the customer."""
        if method.owner and method.owner != customer["reference"]:
            _chargeable(method, customer["reference"])
        if method.token in DECLINES:
            code, message = DECLINES[method.token]
            failed = replace(setup, status="requires_payment_method", payment_method="")
            return _Outcome(result=failed, declined=Declined(message, code=code), write=[_put_setup(failed)])
        if method.token in THREE_D_SECURE and method.owner != customer["reference"]:
            saved = method.saved or _new_method(method.token)  # cloned now, attached once authenticated
            waiting = replace(setup, status="requires_action", payment_method=saved["reference"])
            writes = [] if method.saved else [["payment_methods", saved["reference"], json.dumps(saved)]]
            return _Outcome(result=waiting, write=[*writes, _put_setup(waiting)])
        saved, writes = _attach(method, customer)
        done = replace(setup, status="succeeded", payment_method=saved["reference"])
        return _Outcome(result=done, write=[*writes, _put_setup(done)])

    # --- payment methods -------------------------------------------------------------------------
    def attach_payment_method(
        self, *, payment_method: str, customer_reference: str, idempotency_key: str
    ) -> PaymentMethodResult:
        """Attach: a test token is cloned into a new saved method; a decline token is refused (`Declined`)."""
        reads = [["customers", customer_reference], ["payment_methods", payment_method], ["pm-owner", payment_method]]

        def decide(values: Sequence[str]) -> _Outcome:
            customer = _customer_data(values[0], customer_reference)
            method = _method(payment_method, values[1], values[2])
            if method.token in DECLINES:
                code, message = DECLINES[method.token]
                return _Outcome(declined=Declined(message, code=code))
            if method.owner == customer_reference:
                return _Outcome(result=_method_result(method.saved or {}, customer_reference))
            if method.owner == DETACHED:
                _chargeable(method, customer_reference)
            if method.owner:
                raise Permanent(
                    "The payment method you provided has already been attached to a customer.",
                    code="payment_method_unexpected_state",
                )
            saved, writes = _attach(method, customer)
            return _Outcome(result=_method_result(saved, customer_reference), write=writes)

        return self._call("attach_payment_method", idempotency_key, reads, decide)

    def detach_payment_method(self, *, payment_method: str, idempotency_key: str) -> PaymentMethodResult:
        """Detach for good; if it was the customer's default, the customer has no default any more."""
        reads = [["payment_methods", payment_method], ["pm-owner", payment_method], ["customers", "@2"]]

        def decide(values: Sequence[str]) -> _Outcome:
            method = _method(payment_method, values[0], values[1])
            if method.saved is None or method.owner in ("", DETACHED):
                raise Permanent(
                    "The payment method you provided is not attached to a customer so detachment is impossible.",
                    code="payment_method_unexpected_state",
                )
            writes = [["pm-owner", payment_method, DETACHED]]
            customer = _customer_data(values[2], method.owner, live=False)
            if customer.get("default_payment_method") == payment_method:
                writes.append(_put_customer(customer | {"default_payment_method": ""}))
            return _Outcome(result=_method_result(method.saved, ""), write=writes)

        return self._call("detach_payment_method", idempotency_key, reads, decide)

    def retrieve_payment_method(self, *, payment_method: str) -> PaymentMethodResult:
        """A saved method with its customer ("" once detached); a test token describes its test card."""
        record, owner = self._read(
            "retrieve_payment_method", [["payment_methods", payment_method], ["pm-owner", payment_method]]
        )
        if not record and payment_method in KNOWN_TOKENS:
            return PaymentMethodResult(reference=payment_method, type="card", card=_test_card(payment_method))
        if not record:
            raise _missing("PaymentMethod", payment_method)
        return _method_result(json.loads(record), owner)

    def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
        """The customer's attached methods, newest first (as Stripe lists them), a page per round trip."""
        record = self._read("list_payment_methods", [["customers", customer_reference]])[0]
        methods = list(reversed(_customer_data(record, customer_reference, live=False)["methods"]))
        for start in range(0, len(methods), _PAGE_SIZE):
            page = methods[start : start + _PAGE_SIZE]
            reads = [[name, method] for method in page for name in ("payment_methods", "pm-owner")]
            values = _step({"op": "list_payment_methods", "read": reads})["values"]
            for saved, owner in zip(values[::2], values[1::2], strict=True):
                if saved and owner == customer_reference:
                    yield _method_result(json.loads(saved), owner)

    # --- billing (gateways.billing.BillingGateway) ----------------------------------------------------------
    def list_prices(self) -> Iterator[PriceResult]:
        """The shipped catalog, then the prices created here, oldest first."""
        _step({"op": "list_prices", "count": True})
        for shipped in billing.CATALOG.values():
            yield billing.price_result(shipped)
        for reference, record in self._scan(billing.PRICE_INDEX, "prices", datetime(1970, 1, 1, tzinfo=UTC), _END):
            yield billing.price_result(_record(record, "price", reference))

    def retrieve_price(self, *, reference: str) -> PriceResult:
        record = billing.price_record(reference, self._read("retrieve_price", [["prices", reference]])[0])
        if record is None:
            raise _missing("price", reference)
        return billing.price_result(record)

    def create_price(
        self,
        *,
        product_name: str,
        unit_amount: int,
        currency: str,
        interval: str,
        interval_count: int,
        trial_period_days: int | None,
        idempotency_key: str,
    ) -> PriceResult:
        def decide(_: Sequence[str]) -> _Outcome:
            if unit_amount < 0 or interval not in ("day", "week", "month", "year") or interval_count < 1:
                raise Permanent("Invalid price: unit_amount, interval or interval_count.", code="parameter_invalid")
            created = int(time.time())
            record: dict[str, Any] = {
                "id": billing.new_id("price"),
                "product": billing.new_id("prod"),
                "product_name": product_name,
                "unit_amount": unit_amount,
                "currency": currency.lower(),
                "interval": interval,
                "interval_count": interval_count,
                "trial_period_days": trial_period_days,
                "active": True,
                "created": created,
            }
            return _Outcome(
                result=billing.price_result(record),
                stored={"kind": "price", "value": record},
                write=[["prices", record["id"], json.dumps(record)]],
                index=[[billing.PRICE_INDEX, str(created * 1_000_000), record["id"]]],
            )

        return self._call("create_price", idempotency_key, [], decide)

    def create_subscription(
        self,
        *,
        customer_reference: str,
        price_reference: str,
        quantity: int,
        default_payment_method: str,
        trial_days: int | None,
        metadata: dict[str, str],
        idempotency_key: str,
        test_clock: str = "",
    ) -> SubscriptionResult:
        """Without a trial, the first invoice is charged at once (a decline: `incomplete`, nothing raised)."""
        clock = _clock_name(test_clock)
        reads = [["prices", price_reference], ["clocks", clock]]
        reads += _payer_reads(customer_reference, default_payment_method, base=2)

        def decide(values: Sequence[str]) -> _Outcome:
            price = billing.usable_price(price_reference, values[0])
            _customer_data(values[2], customer_reference)
            if not 1 <= quantity <= 10_000:
                raise Permanent("quantity must be between 1 and 10000.", code="parameter_invalid")
            if trial_days is not None and not 0 <= trial_days <= 730:
                raise Permanent("trial_period_days must be between 0 and 730.", code="parameter_invalid")
            _check_method(default_payment_method, customer_reference, values[5], values[6])
            now = _clock_now(values[1])
            days = trial_days if trial_days is not None else price["trial_period_days"]
            sub = billing.new_subscription(
                reference=billing.new_id("sub"),
                customer=customer_reference,
                price=price,
                quantity=quantity,
                default_payment_method=default_payment_method,
                trial_days=days,
                metadata=metadata,
                clock=clock,
                now=now,
            )
            run = billing.Run(clock=clock, final_status=_final_status())
            billing.start(run, sub, _payer(customer_reference, default_payment_method, values[2:7]), now)
            outcome = _subscription_outcome(run, sub, run.invoices.get(sub["latest_invoice"] or ""), now)
            outcome.write.append(["clocks", clock, str(now)])
            outcome.index.append([billing.SUBSCRIPTION_INDEX, str(now * 1_000_000), sub["id"]])
            return outcome

        return self._call("create_subscription", idempotency_key, reads, decide)

    def update_subscription(
        self,
        *,
        reference: str,
        price_reference: str | None,
        quantity: int | None,
        default_payment_method: str | None,
        metadata: dict[str, str] | None,
        idempotency_key: str,
    ) -> SubscriptionResult:
        """Change what is given; a price or quantity change is prorated onto the next invoice."""
        method = default_payment_method or "@1.default_payment_method"
        reads = [["subscriptions", reference], ["clocks", "@1.clock"], ["invoices", "@1.latest_invoice"]]
        reads += [["prices", price_reference or ""], *_payer_reads("@1.customer", method, base=4)]

        def decide(values: Sequence[str]) -> _Outcome:
            sub = _record(values[0], "subscription", reference)
            latest = json.loads(values[2]) if values[2] else None
            price = billing.usable_price(price_reference, values[3]) if price_reference else None
            if quantity is not None and not 1 <= quantity <= 10_000:
                raise Permanent("quantity must be between 1 and 10000.", code="parameter_invalid")
            if default_payment_method:
                _check_method(default_payment_method, sub["customer"], values[7], values[8])
            now = _clock_now(values[1])
            run = billing.Run(clock=sub["clock"], final_status=_final_status())
            if latest is not None:
                run.invoices[latest["id"]] = latest
            before = dict(sub)
            if default_payment_method is not None:
                sub["default_payment_method"] = default_payment_method
            if metadata is not None:
                merged = {**sub["metadata"], **metadata}
                sub["metadata"] = {key: value for key, value in merged.items() if value != ""}
            payer = partial(_payer, sub["customer"], sub["default_payment_method"], values[4:9])
            billing.change(run, sub, price, quantity, payer, now)
            if sub != before and not any(e["type"] == "customer.subscription.updated" for e in run.events):
                run.emit_subscription("customer.subscription.updated", sub, now)
            return _subscription_outcome(run, sub, run.invoices.get(sub["latest_invoice"] or ""), now)

        return self._call("update_subscription", idempotency_key, reads, decide)

    def cancel_subscription(self, *, reference: str, at_period_end: bool, idempotency_key: str) -> SubscriptionResult:
        reads = [["subscriptions", reference], ["clocks", "@1.clock"], ["invoices", "@1.latest_invoice"]]

        def decide(values: Sequence[str]) -> _Outcome:
            sub = _record(values[0], "subscription", reference)
            now = _clock_now(values[1])
            run = billing.Run(clock=sub["clock"])
            billing.cancel(run, sub, at_period_end, now)
            return _subscription_outcome(run, sub, json.loads(values[2]) if values[2] else None, now)

        return self._call("cancel_subscription", idempotency_key, reads, decide)

    def retrieve_subscription(self, *, reference: str) -> SubscriptionResult:
        record, latest = self._read(
            "retrieve_subscription", [["subscriptions", reference], ["invoices", "@1.latest_invoice"]]
        )
        return billing.subscription_result(
            _record(record, "subscription", reference), json.loads(latest) if latest else None
        )

    def list_subscriptions(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[SubscriptionResult]:
        """Every subscription created in the window (its clock's time), oldest first, a page per round trip."""
        page: list[dict[str, Any]] = []
        for reference, record in self._scan(billing.SUBSCRIPTION_INDEX, "subscriptions", created_gte, created_lt):
            page.append(_record(record, "subscription", reference))
            if len(page) == _PAGE_SIZE:
                yield from self._with_latest(page)
                page = []
        yield from self._with_latest(page)

    @staticmethod
    def _with_latest(subs: list[dict[str, Any]]) -> Iterator[SubscriptionResult]:
        if not subs:
            return
        reads = [["invoices", sub["latest_invoice"] or ""] for sub in subs]
        values = _step({"op": "list_subscriptions", "read": reads})["values"]
        for sub, latest in zip(subs, values, strict=True):
            yield billing.subscription_result(sub, json.loads(latest) if latest else None)

    def retrieve_invoice(self, *, reference: str) -> InvoiceResult:
        record = self._read("retrieve_invoice", [["invoices", reference]])[0]
        return billing.invoice_result(_record(record, "invoice", reference))

    def list_invoices(self, *, subscription_reference: str) -> Iterator[InvoiceResult]:
        """The subscription's invoices, newest first."""
        _step({"op": "list_invoices", "count": True})
        index, start = "invoices-of:" + subscription_reference, datetime(1970, 1, 1, tzinfo=UTC)
        found = list(self._scan(index, "invoices", start, _END))
        for reference, record in reversed(found):
            yield billing.invoice_result(_record(record, "invoice", reference))

    def pay_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        """Attempt an open invoice now; a decline leaves it open with `failure_code` (nothing raised)."""
        reads = [["invoices", reference], ["subscriptions", "@1.subscription"], ["clocks", "@2.clock"]]
        reads += [["intents", "@1.payment_intent"], *_payer_reads("@1.customer", "@2.default_payment_method", 4)]

        def decide(values: Sequence[str]) -> _Outcome:
            inv = _record(values[0], "invoice", reference)
            sub = json.loads(values[1]) if values[1] else None
            now = _clock_now(values[2])
            run = billing.Run(clock=sub["clock"] if sub else _DEFAULT_CLOCK, final_status=_final_status())
            run.invoices[inv["id"]] = inv
            if values[3]:
                run.intents[inv["payment_intent"]] = json.loads(values[3])
            method = sub["default_payment_method"] if sub else ""
            billing.pay(run, sub, inv, _payer(inv["customer"], method, values[4:9]), now)
            return self._invoice_outcome(run, sub, inv, now)

        return self._call("pay_invoice", idempotency_key, reads, decide)

    def mark_invoice_uncollectible(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        return self._close_invoice("mark_invoice_uncollectible", reference, "uncollectible", idempotency_key)

    def void_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        return self._close_invoice("void_invoice", reference, "void", idempotency_key)

    def _close_invoice(self, operation: str, reference: str, status: str, idempotency_key: str) -> InvoiceResult:
        reads = [["invoices", reference], ["subscriptions", "@1.subscription"], ["clocks", "@2.clock"]]

        def decide(values: Sequence[str]) -> _Outcome:
            inv = _record(values[0], "invoice", reference)
            sub = json.loads(values[1]) if values[1] else None
            now = _clock_now(values[2])
            run = billing.Run(clock=sub["clock"] if sub else _DEFAULT_CLOCK)
            run.invoices[inv["id"]] = inv
            billing.close(run, sub, inv, status, now)
            return self._invoice_outcome(run, sub, inv, now)

        return self._call(operation, idempotency_key, reads, decide)

    @staticmethod
    def _invoice_outcome(run: billing.Run, sub: dict[str, Any] | None, inv: dict[str, Any], now: int) -> _Outcome:
        if sub is not None:
            run.subscriptions[sub["id"]] = sub
        stored = {"kind": "invoice", "value": inv}
        return _run_outcome(run, now=now, stored=stored, result=billing.invoice_result(inv))

    def clock_now(self, *, clock: str) -> datetime:
        """The clock's simulated time (real now for a clock not seen yet)."""
        value = _step({"op": "clock_now", "read": [["clocks", _clock_name(clock)]]})["values"][0]
        return datetime.fromtimestamp(_clock_now(value), tz=UTC)

    def advance_clock(self, *, clock: str, seconds: int) -> tuple[datetime, list[dict[str, Any]]]:
        """Move the clock forward by `seconds` and do, in time order, everything that falls due meanwhile.

        Returns the clock's new time and the events Stripe would send, oldest first: first those of the
        calls made on the clock since the last advance (customer.subscription.created, ...), then those of
        what fell due. A few round trips whatever the number of subscriptions: only the due ones are read.
        """
        if seconds < 0:
            raise Permanent("A clock only moves forward.", code="parameter_invalid")
        name = _clock_name(clock)
        for _ in range(_ATTEMPTS):
            done = self._advance_once(name, seconds)
            if done is not None:
                return done
        raise GatewayUnavailable("The simulated clock is busy; try again.")

    def _advance_once(self, clock: str, seconds: int) -> tuple[datetime, list[dict[str, Any]]] | None:
        """One attempt (None: a concurrent call changed what it read; try again)."""
        head = [["clocks", clock], ["clocks", "events-seen:" + clock]]
        values = _step({"op": "advance_clock", "count": True, "read": head})["values"]
        now, seen = _clock_now(values[0]), int(values[1] or 0)
        until = now + seconds
        pending = _store_call(partial(_store_page, "events:" + clock, "events", seen, billing.NEVER * 4096, 1000))
        due = _store_call(partial(_store_page, "due:" + clock, "subscriptions", 0, until + 1, _PAGE_SIZE))
        subs = [json.loads(record) for _, _, record in due if record]
        reads: list[list[str]] = []
        for position, sub in enumerate(subs):
            base = position * 7
            reads += _payer_reads(sub["customer"], sub["default_payment_method"], base)
            reads += [
                ["invoices", sub["dunning_invoice"] or sub["latest_invoice"] or ""],
                ["intents", f"@{base + 6}.payment_intent"],
            ]
        found = _step({"op": "advance_clock", "read": reads})["values"] if reads else []
        run = billing.Run(clock=clock, final_status=_final_status())
        payers = {}
        for position, sub in enumerate(subs):
            got = found[position * 7 : position * 7 + 7]
            payers[sub["id"]] = _payer(sub["customer"], sub["default_payment_method"], got[:5])
            if got[5]:
                invoice = json.loads(got[5])
                run.invoices[invoice["id"]] = invoice
                if got[6]:
                    run.intents[invoice["payment_intent"]] = json.loads(got[6])
        # Only the page's subscriptions are advanced: with more due than a page, the clock stops where they
        # stand and the next attempt (same call) takes the next page.
        full = len(due) == _PAGE_SIZE
        target = min(billing.next_due(sub) for sub in subs) if full else until
        billing.advance(run, subs, payers, target)
        writes, index = run.writes()
        expect = [["clocks", clock, values[0]], ["clocks", "events-seen:" + clock, values[1]]]
        expect += [["subscriptions", ref, record] for ref, _, record in due]
        last_seen = pending[-1][1] + 1 if pending else seen
        writes += [["clocks", clock, str(target)], ["clocks", "events-seen:" + clock, str(last_seen)]]
        answer = _step({"op": "advance_clock", "expect": expect, "write": writes, "index": index, "push": run.pushes()})
        if answer.get("conflict"):
            return None
        events = [json.loads(record) for _, _, record in pending if record] + run.events
        if full and target < until:
            later_at, later = self._advance_once(clock, until - target) or (None, [])
            if later_at is None:
                return None
            return later_at, events + later
        return datetime.fromtimestamp(target, tz=UTC), events

    # --- disputes (gateways.disputes.DisputeGateway) -------------------------------------------------------
    def retrieve_dispute(self, *, reference: str) -> DisputeResult:
        record = self._read("retrieve_dispute", [["disputes", reference]])[0]
        return parse_dispute(dispute_engine.load(record, reference))

    def list_disputes(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[DisputeResult]:
        """Every dispute created in [created_gte, created_lt), any status, oldest first, a page per round trip."""
        for reference, record in self._scan(dispute_engine.DISPUTE_INDEX, "disputes", created_gte, created_lt):
            yield parse_dispute(dispute_engine.load(record, reference))

    def update_dispute(
        self,
        *,
        reference: str,
        evidence: Mapping[str, str],
        files: Sequence[EvidenceFile],
        submit: bool,
        idempotency_key: str,
    ) -> DisputeResult:
        """Save evidence ("" unsets a field); files are "uploaded" (their sha256 and name kept, a file_ id in
        their field); `submit` sends it. Each change queues `charge.dispute.updated`. Two round trips."""
        check_evidence(evidence=evidence, files=files)

        def decide(values: Sequence[str]) -> _Outcome:
            dispute = dispute_engine.load(values[0], reference)
            now = int(time.time())
            uploaded = [dispute_engine.file_record(item, now) for item in files]
            file_ids = {item.field: record["id"] for item, record in zip(files, uploaded, strict=True)}
            events = dispute_engine.update(dispute, evidence=evidence, file_ids=file_ids, submit=submit, now=now)
            outcome = _dispute_outcome(dispute, events)
            outcome.write += [["files", record["id"], json.dumps(record)] for record in uploaded]
            return outcome

        return self._call("update_dispute", idempotency_key, [["disputes", reference]], decide)

    def close_dispute(self, *, reference: str, idempotency_key: str) -> DisputeResult:
        """Accept it: lost (an inquiry: warning_closed) at once; queues `charge.dispute.closed`."""

        def decide(values: Sequence[str]) -> _Outcome:
            dispute = dispute_engine.load(values[0], reference)
            return _dispute_outcome(dispute, dispute_engine.accept(dispute, int(time.time())))

        return self._call("close_dispute", idempotency_key, [["disputes", reference]], decide)

    # --- disputes: test and demo controls ------------------------------------------------------------------
    @staticmethod
    def pending_dispute_events() -> list[dict[str, Any]]:
        """Take the `charge.dispute.*` events queued since the last call, oldest first (one round trip).

        Atomic: with several callers at once, each event is handed to exactly one of them.
        """
        return [json.loads(item) for item in _store_call(lambda: _store().drain(dispute_engine.EVENT_QUEUE))]

    def close_dispute_as(self, *, reference: str, outcome: str) -> list[dict[str, Any]]:
        """Decide an open dispute as the bank would ("won" | "lost") and return its events (not queued).

        Won: `charge.dispute.closed`, then `charge.dispute.funds_reinstated` (a positive balance transaction);
        lost: `charge.dispute.closed`. An inquiry won is `warning_closed`; lost, it is escalated and lost
        (`charge.dispute.funds_withdrawn`, then `charge.dispute.closed`).
        :raises Permanent: unknown, or closed already.
        """
        if outcome not in ("won", "lost"):
            raise ValueError("outcome must be 'won' or 'lost'")
        decided: list[dict[str, Any]] = []

        def decide(values: Sequence[str]) -> _Outcome:
            dispute = dispute_engine.load(values[0], reference)
            decided[:] = dispute_engine.decide(dispute, outcome, int(time.time()))
            return _dispute_outcome(dispute, decided, queue=False)

        key, reads = {"op": "close_dispute_as"}, [["disputes", reference]]
        self._transact(key, reads, _step(key | {"count": True, "read": reads})["values"], decide, record=False)
        return list(decided)

    # --- internals ---------------------------------------------------------------------------
    @staticmethod
    def _read(operation: str, reads: list[list[str]]) -> list[str]:
        """One read-only call: counted, faults applied, the gateway's latency; one round trip."""
        _network_latency()
        answer = _step({"op": operation, "count": True, "faults": True, "read": reads})
        if "fault" in answer:
            raise _fault(answer["fault"])
        return list(answer["values"])

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
        if not reads and _latency_ms() <= 0:
            return self._call_at_once(key, decide)
        answer = _step(key | {"count": True, "faults": True, "after": True, "lock": True, "read": reads})
        _network_latency()  # the gateway at work, with the key marked in progress
        if "values" not in answer:
            return self._finish(answer, None)  # a fault, a call in progress (409) or a replay
        return self._transact(key, reads, answer["values"], decide, record=True)

    def _call_at_once(self, key: dict[str, Any], decide: Callable[[Sequence[str]], _Outcome]) -> Any:
        """`_call` of a call that reads nothing, with no latency to model: one step instead of two.

        What the call decides depends on no stored value, so it is decided first, then one step does what the
        two would: count the call, apply an injected fault, replay a stored outcome, refuse while another call
        holds the key (409), write, store the outcome, and drop the mark it took. A call refused by `decide` is
        counted too, and a fault, a replay or a call in progress answers before the refusal, as in two steps.
        """
        marked = key | {"count": True, "faults": True, "after": True, "lock": True, "unlock": True}
        try:
            outcome = decide(())
        except GatewayError:
            answer = _step(marked)
            if "values" not in answer:
                return self._finish(answer, None)  # a fault, a call in progress (409) or a replay
            raise
        return self._finish(_step(marked | outcome.spec(record=True)), outcome)

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

    def _confirmed(
        self,
        intent: IntentResult,
        extras: dict[str, str],
        method: _Method,
        customer_record: str,
        *,
        created: datetime | None,
        off_session: bool = False,
    ) -> _Outcome:
        """Confirm with a test card (or a method saved from one): authorised, declined, or waiting for 3-D Secure."""
        intent = replace(intent, payment_method=method.reference, failure_code="", failure_message="")
        token = method.token
        failure = DECLINES.get(token) or CHARGE_FAILS.get(token)
        if failure is None and off_session and token in THREE_D_SECURE:
            failure = ("authentication_required", "Your card was declined. This transaction requires authentication.")
        if failure is not None:
            code, message = failure
            intent = replace(intent, status="requires_payment_method", failure_code=code, failure_message=message)
            outcome = _put_intent(intent, created=created, extras=extras)
            outcome.declined = Declined(message, code=code, intent=intent)
            return outcome
        if token in THREE_D_SECURE:
            return _put_intent(replace(intent, status="requires_action"), created=created, extras=extras)
        return self._authorized(intent, extras, method, customer_record, created=created)

    def _authorized(
        self,
        intent: IntentResult,
        extras: dict[str, str],
        method: _Method,
        customer_record: str,
        *,
        created: datetime | None,
    ) -> _Outcome:
        """The charge goes through; with `setup_future_usage` and a customer, the card is saved to the customer."""
        writes: list[list[str]] = []
        customer = extras.get("customer", "")
        if extras.get("setup_future_usage") and customer and method.owner != customer:
            saved, writes = _attach(method, _customer_data(customer_record, customer))
            intent = replace(intent, payment_method=saved["reference"])
        authorized = self._authorize(intent)
        outcome = _disputed(_put_intent(authorized, created=created, extras=extras), authorized, method.token)
        outcome.write[:0] = writes
        return outcome

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
