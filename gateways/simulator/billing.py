"""The simulator's billing engine: Stripe Billing's catalog, subscriptions, invoices and dunning, on a clock.

Pure functions on plain records (dicts of Unix seconds, as Stripe's objects are), with no store access:
`gateways.simulator.gateway` reads the records, lets this module decide, and writes what it returns in one
compare-and-set step. Each subscription lives on a clock (`clock` in its record); its *next due time* (the
earliest of: incomplete expiry, trial_will_end, trial end, period end, the next dunning retry) is its score
in the clock's `due:<clock>` sorted set, so advancing a clock reads only what falls due.

What happens, as on Stripe (with `payment_behavior=allow_incomplete`, `proration_behavior=create_prorations`):
- no trial: the first invoice is charged at once; a decline leaves the subscription `incomplete` (its invoice
  `open`, `failure_code` set), `incomplete_expired` 23 hours later if still unpaid (the invoice is voided);
- a trial: `trialing`, no invoice; `trial_will_end` 3 days before it ends; at its end the first invoice;
- each period end: a renewal invoice (quantity × unit_amount plus pending prorations), charged off session
  with the subscription's default payment method, else the customer's; `cancel_at_period_end` ends it instead;
- a declined renewal: invoice `open`, subscription `past_due`, retries 1, 3, 5 and 7 days after the first
  failure; then `canceled` (the invoice marked uncollectible) or, with `SIMULATOR_DUNNING_FINAL_STATUS =
  "unpaid"`, `unpaid` (the invoice stays open, no more retries or renewals);
- a price or quantity change: the unused time is credited and the remaining time charged, to the second, as
  proration lines on the next invoice (a change of interval resets the cycle and invoices at once).
One payment intent per invoice (retries confirm it again), with metadata `invoice` and `subscription`.
An invoice paid with `pm_card_createDispute` (or `...Inquiry`) is disputed as it is paid, on the wall clock
(`gateways.simulator.disputes`; its events wait for `pending_dispute_events`, not for `advance_clock`).
"""

import calendar
import heapq
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateways.base import GatewayError, IntentResult, Permanent
from gateways.billing import (
    InvoiceLineResult,
    InvoiceResult,
    PriceResult,
    SubscriptionResult,
    event,
)
from gateways.simulator import disputes

DAY = 86_400
INCOMPLETE_EXPIRY = 23 * 3600
TRIAL_WILL_END_BEFORE = 3 * DAY
RETRY_DAYS = (1, 3, 5, 7)  # after the first failure (Stripe's Smart Retries replaced by a fixed schedule)
NEVER = 2**52  # the due score of a subscription with nothing left to do
SUBSCRIPTION_INDEX = "subscriptions-by-created"
PRICE_INDEX = "prices-by-created"
_ENDED = {"canceled", "incomplete_expired"}

# The catalog every simulator ships (the contract's), besides the prices created with `create_price`.
CATALOG: dict[str, dict[str, Any]] = {
    ref: {
        "id": ref,
        "product": product,
        "product_name": name,
        "unit_amount": amount,
        "currency": currency,
        "interval": interval,
        "interval_count": 1,
        "trial_period_days": None,
        "active": True,
        "created": 1_700_000_000,
    }
    for ref, product, name, amount, currency, interval in (
        ("price_basic_monthly", "prod_basic", "Basic", 900, "usd", "month"),
        ("price_pro_monthly", "prod_pro", "Pro", 2900, "usd", "month"),
        ("price_pro_yearly", "prod_pro", "Pro", 29000, "usd", "year"),
        ("price_jpy_monthly", "prod_jpy", "Basic (JPY)", 1000, "jpy", "month"),
    )
}


def new_id(prefix: str) -> str:
    return f"{prefix}_sim_{secrets.token_hex(12)}"


def at(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def add_interval(anchor: int, interval: str, count: int, times: int) -> int:
    """`anchor` moved `times` × `count` intervals; months keep the anchor's day, clamped to the month's end."""
    if interval in ("day", "week"):
        return anchor + times * count * (DAY if interval == "day" else 7 * DAY)
    start = _at(anchor)
    months = times * count * (12 if interval == "year" else 1)
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


# --- prices -----------------------------------------------------------------------------------------
def price_record(reference: str, stored: str) -> dict[str, Any] | None:
    if stored:
        record: dict[str, Any] = json.loads(stored)
        return record
    return CATALOG.get(reference)


def price_result(record: dict[str, Any]) -> PriceResult:
    return PriceResult(
        reference=record["id"],
        product_reference=record["product"],
        product_name=record["product_name"],
        unit_amount=record["unit_amount"],
        currency=record["currency"],
        interval=record["interval"],
        interval_count=record["interval_count"],
        trial_period_days=record["trial_period_days"],
        active=record["active"],
    )


def usable_price(reference: str, stored: str) -> dict[str, Any]:
    record = price_record(reference, stored)
    if record is None:
        raise Permanent(f"No such price: '{reference}'", code="resource_missing")
    if not record["active"]:
        raise Permanent(f"The price '{reference}' is not active.", code="price_inactive")
    return record


# --- results and Stripe-shaped objects -----------------------------------------------------------------
def invoice_result(inv: dict[str, Any]) -> InvoiceResult:
    lines = tuple(
        InvoiceLineResult(
            description=line["description"],
            amount=line["amount"],
            quantity=line["quantity"],
            price_reference=line["price"],
            period_start=_at(line["period"]["start"]),
            period_end=_at(line["period"]["end"]),
        )
        for line in inv["lines"]
    )
    return InvoiceResult(
        reference=inv["id"],
        customer_reference=inv["customer"],
        subscription_reference=inv["subscription"],
        status=inv["status"],
        currency=inv["currency"],
        amount_due=inv["amount_due"],
        amount_paid=inv["amount_paid"],
        amount_remaining=inv["amount_remaining"],
        attempt_count=inv["attempt_count"],
        next_payment_attempt=at(inv["next_payment_attempt"]),
        period_start=at(inv["period_start"]),
        period_end=at(inv["period_end"]),
        lines=lines,
        payment_intent_reference=inv["payment_intent"] or "",
        failure_code=inv["failure_code"],
        hosted_invoice_url=inv["hosted_invoice_url"],
        created_at=at(inv["created"]),
    )


def subscription_result(sub: dict[str, Any], latest: dict[str, Any] | None) -> SubscriptionResult:
    return SubscriptionResult(
        reference=sub["id"],
        customer_reference=sub["customer"],
        price_reference=sub["price"],
        quantity=sub["quantity"],
        status=sub["status"],
        current_period_start=_at(sub["current_period_start"]),
        current_period_end=_at(sub["current_period_end"]),
        trial_start=at(sub["trial_start"]),
        trial_end=at(sub["trial_end"]),
        cancel_at_period_end=sub["cancel_at_period_end"],
        canceled_at=at(sub["canceled_at"]),
        default_payment_method=sub["default_payment_method"],
        latest_invoice=invoice_result(latest) if latest else None,
        metadata=dict(sub["metadata"]),
        created_at=at(sub["created"]),
    )


def subscription_object(sub: dict[str, Any]) -> dict[str, Any]:
    """The subscription as Stripe shows it (`latest_invoice` an id, times in Unix seconds)."""
    price = {
        "id": sub["price"],
        "object": "price",
        "product": sub["product"],
        "unit_amount": sub["unit_amount"],
        "currency": sub["currency"],
        "recurring": {"interval": sub["interval"], "interval_count": sub["interval_count"]},
    }
    item = {"id": "si_" + sub["id"].removeprefix("sub_"), "object": "subscription_item", "price": price}
    item["quantity"] = sub["quantity"]
    fields = (
        "id customer status quantity currency current_period_start current_period_end trial_start trial_end "
        "cancel_at_period_end canceled_at ended_at latest_invoice start_date billing_cycle_anchor created"
    )
    obj = {name: sub[name] for name in fields.split()}
    return obj | {
        "object": "subscription",
        "items": {"object": "list", "data": [item]},
        "plan": {"id": sub["price"], "amount": sub["unit_amount"], "interval": sub["interval"]},
        "default_payment_method": sub["default_payment_method"] or None,
        "metadata": dict(sub["metadata"]),
        "test_clock": sub["clock"],
        "livemode": False,
    }


def invoice_object(inv: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "id customer subscription status currency amount_due amount_paid amount_remaining attempt_count "
        "attempted next_payment_attempt period_start period_end payment_intent hosted_invoice_url created "
        "billing_reason"
    )
    obj = {name: inv[name] for name in fields.split()}
    lines = [
        {
            "object": "line_item",
            "description": line["description"],
            "amount": line["amount"],
            "currency": inv["currency"],
            "quantity": line["quantity"],
            "price": {"id": line["price"]},
            "proration": line["proration"],
            "period": dict(line["period"]),
        }
        for line in inv["lines"]
    ]
    error = {"code": inv["failure_code"]} if inv["failure_code"] else None
    return obj | {
        "object": "invoice",
        "total": sum(line["amount"] for line in inv["lines"]),
        "lines": {"object": "list", "data": lines},
        "last_finalization_error": None,
        "last_payment_error": error,
        "paid": inv["status"] == "paid",
        "livemode": False,
    }


def intent_object(intent: dict[str, Any], created: int) -> dict[str, Any]:
    error = None
    if intent["failure_code"]:
        error = {"type": "card_error", "code": intent["failure_code"], "message": intent["failure_message"]}
        if intent["failure_code"] != "authentication_required":
            error["decline_code"] = intent["failure_code"]
    return {
        "id": intent["reference"],
        "object": "payment_intent",
        "amount": intent["amount"],
        "amount_received": intent["amount_received"],
        "currency": intent["currency"],
        "status": intent["status"],
        "capture_method": "automatic",
        "customer": intent.get("customer") or None,
        "payment_method": intent["payment_method"] or None,
        "invoice": intent["metadata"].get("invoice"),
        "metadata": dict(intent["metadata"]),
        "last_payment_error": error,
        "created": created,
        "livemode": False,
    }


# --- one run: what a call decides ---------------------------------------------------------------------
@dataclass(frozen=True)
class Payer:
    """Who pays a subscription's invoices: the payment method charged and how each charge of it ends."""

    reference: str  # the pm_... charged ("" when the subscription and its customer have none)
    failure: tuple[str, str] | None  # (code, message) of every charge, None when it goes through
    token: str = ""  # the test card it stands for (a dispute test card's paid charge is disputed)


NO_PAYER = Payer("", ("payment_method_missing", "The customer has no payment method to charge."))


@dataclass
class Run:
    """The records one call touches and the events it makes, in order; written together at the end."""

    clock: str
    final_status: str = "canceled"
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_invoices: list[str] = field(default_factory=list)
    new_intents: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    disputes: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)  # new, with events

    def emit(self, event_type: str, created: int, obj: dict[str, Any]) -> None:
        self.events.append(event(new_id("evt"), event_type, created, json.loads(json.dumps(obj))))

    def emit_subscription(self, event_type: str, sub: dict[str, Any], created: int) -> None:
        self.emit(event_type, created, subscription_object(sub))

    def writes(self) -> tuple[list[list[str]], list[list[str]]]:
        """(HSET writes, ZADD index entries) for every record touched (due scores in seconds, others in µs)."""
        writes, index = [], []
        for ref, sub in self.subscriptions.items():
            writes.append(["subscriptions", ref, json.dumps(sub)])
            index.append(["due:" + sub["clock"], str(next_due(sub)), ref])
        for ref, inv in self.invoices.items():
            writes.append(["invoices", ref, json.dumps(inv)])
        for ref in self.new_invoices:
            inv = self.invoices[ref]
            score = inv["created"] * 1_000_000 + inv["seq"]
            index.append(["invoices-of:" + inv["subscription"], str(score), ref])
        for ref, intent in self.intents.items():
            writes.append(["intents", ref, json.dumps(intent)])
        for ref in self.new_intents:
            intent = self.intents[ref]
            created = datetime.fromisoformat(intent["created_at"])
            index.append(["intents-by-created", str(int(created.timestamp()) * 1_000_000), ref])
        for dispute, events in self.disputes:
            dispute_writes, dispute_index, _ = disputes.writes(dispute, events, new=True)
            writes += dispute_writes
            index += dispute_index
        return writes, index

    def pushes(self) -> list[list[str]]:
        """The RPUSHes that queue the new disputes' events for `pending_dispute_events`."""
        return [push for dispute, events in self.disputes for push in disputes.writes(dispute, events)[2]]


def next_due(sub: dict[str, Any]) -> int:
    """When something next happens to the subscription (NEVER once nothing will)."""
    status, times = sub["status"], [NEVER]
    if status == "incomplete":
        times.append(sub["expires_at"])
    elif status == "trialing":
        if not sub["trial_will_end_sent"] and sub["trial_end"] - sub["trial_start"] > TRIAL_WILL_END_BEFORE:
            times.append(sub["trial_end"] - TRIAL_WILL_END_BEFORE)
        times.append(sub["trial_end"])
    elif status in ("active", "past_due"):
        times.append(sub["current_period_end"])
        if sub["retry_at"] is not None:
            times.append(sub["retry_at"])
    return min(times)


def new_subscription(
    *,
    reference: str,
    customer: str,
    price: dict[str, Any],
    quantity: int,
    default_payment_method: str,
    trial_days: int | None,
    metadata: dict[str, str],
    clock: str,
    now: int,
) -> dict[str, Any]:
    trial_end = now + trial_days * DAY if trial_days else None
    anchor = trial_end or now
    sub = {
        "id": reference,
        "customer": customer,
        "quantity": quantity,
        "status": "trialing" if trial_end else "incomplete",
        "created": now,
        "start_date": now,
        "billing_cycle_anchor": anchor,
        "cycle": 0,
        "current_period_start": now,
        "current_period_end": trial_end or add_interval(anchor, price["interval"], price["interval_count"], 1),
        "trial_start": now if trial_end else None,
        "trial_end": trial_end,
        "trial_will_end_sent": False,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "latest_invoice": None,
        "default_payment_method": default_payment_method,
        "metadata": dict(metadata),
        "clock": clock,
        "pending_lines": [],
        "expires_at": None,
        "retry_at": None,
        "dunning_invoice": None,
    }
    set_price(sub, price)
    return sub


def set_price(sub: dict[str, Any], price: dict[str, Any]) -> None:
    sub |= {
        "price": price["id"],
        "product": price["product"],
        "product_name": price["product_name"],
        "unit_amount": price["unit_amount"],
        "currency": price["currency"],
        "interval": price["interval"],
        "interval_count": price["interval_count"],
    }


def _cycle_line(sub: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    return {
        "description": f"{sub['quantity']} × {sub['product_name']} (at {sub['unit_amount']} / {sub['interval']})",
        "amount": sub["quantity"] * sub["unit_amount"],
        "quantity": sub["quantity"],
        "price": sub["price"],
        "proration": False,
        "period": {"start": start, "end": end},
    }


def _new_invoice(run: Run, sub: dict[str, Any], lines: list[dict[str, Any]], now: int, reason: str) -> dict[str, Any]:
    """A new invoice for `lines`, created (draft) then finalized (open): invoice.created, invoice.finalized."""
    reference = new_id("in")
    sub["invoice_count"] = sub.get("invoice_count", 0) + 1
    total = sum(line["amount"] for line in lines)
    inv = {
        "id": reference,
        "customer": sub["customer"],
        "subscription": sub["id"],
        "status": "draft",
        "currency": sub["currency"],
        "amount_due": max(total, 0),
        "amount_paid": 0,
        "amount_remaining": max(total, 0),
        "attempt_count": 0,
        "attempted": False,
        "next_payment_attempt": None,
        "first_failed_at": None,
        "period_start": min(line["period"]["start"] for line in lines),
        "period_end": max(line["period"]["end"] for line in lines),
        "lines": lines,
        "payment_intent": None,
        "failure_code": "",
        "hosted_invoice_url": f"https://simulator.invalid/invoices/{reference}",
        "created": now,
        "billing_reason": reason,
        "seq": sub["invoice_count"],  # orders the subscription's invoices made in the same second
    }
    run.invoices[reference] = inv
    run.new_invoices.append(reference)
    sub["latest_invoice"] = reference
    run.emit("invoice.created", now, invoice_object(inv))
    inv["status"] = "open"
    run.emit("invoice.finalized", now, invoice_object(inv))
    return inv


def charge(run: Run, sub: dict[str, Any], inv: dict[str, Any], payer: Payer, now: int) -> bool:
    """One attempt at the invoice through its payment intent (made on the first attempt); True when paid."""
    if inv["amount_due"] == 0:
        inv |= {"status": "paid", "attempted": True, "next_payment_attempt": None}
        run.emit("invoice.paid", now, invoice_object(inv))
        return True
    inv["attempt_count"] += 1
    inv["attempted"] = True
    intent = run.intents.get(inv["payment_intent"] or "")
    if intent is None and payer.reference:
        reference = new_id("pi")
        created = _at(now)
        result = IntentResult(
            reference=reference,
            status="requires_payment_method",
            amount=inv["amount_due"],
            currency=inv["currency"],
            capture_method="automatic",
            client_secret=f"{reference}_secret_{secrets.token_hex(8)}",
            created_at=created,
            metadata={"invoice": inv["id"], "subscription": sub["id"]},
        )
        intent = asdict(result) | {"created_at": created.isoformat(), "customer": sub["customer"]}
        intent["setup_future_usage"] = ""
        run.intents[reference] = intent
        run.new_intents.append(reference)
        inv["payment_intent"] = reference
    if intent is not None:
        intent["payment_method"] = payer.reference
        if payer.failure is None:
            intent |= {"status": "succeeded", "amount_received": intent["amount"], "failure_code": ""}
            intent["failure_message"] = ""
            if disputes.is_disputed(payer.token):
                run.disputes.append(
                    disputes.new_dispute(
                        intent_reference=intent["reference"],
                        amount=intent["amount_received"],
                        currency=intent["currency"],
                        token=payer.token,
                        now=int(time.time()),  # disputes run on the wall clock, not the test clock
                    )
                )
        else:
            code, message = payer.failure
            intent |= {"status": "requires_payment_method", "failure_code": code, "failure_message": message}
        run.emit(
            "payment_intent.succeeded" if payer.failure is None else "payment_intent.payment_failed",
            now,
            intent_object(intent, inv["created"]),
        )
    if payer.failure is None:
        inv |= {"status": "paid", "amount_paid": inv["amount_due"], "amount_remaining": 0, "failure_code": ""}
        inv["next_payment_attempt"] = None
        run.emit("invoice.paid", now, invoice_object(inv))
        return True
    inv["failure_code"] = payer.failure[0]
    if inv["first_failed_at"] is None:
        inv["first_failed_at"] = now
    retries_done = inv["attempt_count"] - 1
    automatic = inv["billing_reason"] != "subscription_create" and retries_done < len(RETRY_DAYS)
    inv["next_payment_attempt"] = inv["first_failed_at"] + RETRY_DAYS[retries_done] * DAY if automatic else None
    run.emit("invoice.payment_failed", now, invoice_object(inv))
    return False


def _after_payment(run: Run, sub: dict[str, Any], inv: dict[str, Any], paid: bool, now: int) -> None:
    """The subscription's status after an attempt at `inv` (its latest invoice, or the one in dunning)."""
    before = sub["status"]
    if paid:
        if inv["id"] == sub["dunning_invoice"] or inv["id"] == sub["latest_invoice"]:
            sub |= {"dunning_invoice": None, "retry_at": None, "expires_at": None}
            if sub["status"] in ("incomplete", "past_due", "unpaid"):
                sub["status"] = "active"
    elif sub["status"] != "incomplete":
        if inv["next_payment_attempt"] is not None:
            sub |= {"status": "past_due", "dunning_invoice": inv["id"], "retry_at": inv["next_payment_attempt"]}
        else:  # retries ran out
            _retries_exhausted(run, sub, inv, now)
            return
    if sub["status"] != before:
        run.emit_subscription("customer.subscription.updated", sub, now)


def _retries_exhausted(run: Run, sub: dict[str, Any], inv: dict[str, Any], now: int) -> None:
    sub |= {"dunning_invoice": None, "retry_at": None}
    if run.final_status == "unpaid":
        sub["status"] = "unpaid"
        run.emit_subscription("customer.subscription.updated", sub, now)
        return
    inv["status"] = "uncollectible"
    run.emit("invoice.marked_uncollectible", now, invoice_object(inv))
    sub |= {"status": "canceled", "canceled_at": now, "ended_at": now}
    run.emit_subscription("customer.subscription.deleted", sub, now)


def start(run: Run, sub: dict[str, Any], payer: Payer, now: int) -> None:
    """A new subscription: customer.subscription.created, and without a trial its first invoice charged now."""
    if sub["status"] == "trialing":
        run.emit_subscription("customer.subscription.created", sub, now)
        return
    inv = _new_invoice(run, sub, [_cycle_line(sub, now, sub["current_period_end"])], now, "subscription_create")
    paid = charge(run, sub, inv, payer, now)
    sub["status"] = "active" if paid else "incomplete"
    sub["expires_at"] = None if paid else now + INCOMPLETE_EXPIRY
    run.emit_subscription("customer.subscription.created", sub, now)


def _renew(run: Run, sub: dict[str, Any], payer: Payer, now: int, *, first: bool) -> None:
    """A new period from `now` (the period end, or the trial end): its invoice, charged."""
    if not first:
        sub["cycle"] += 1
    start_at = add_interval(sub["billing_cycle_anchor"], sub["interval"], sub["interval_count"], sub["cycle"])
    end_at = add_interval(sub["billing_cycle_anchor"], sub["interval"], sub["interval_count"], sub["cycle"] + 1)
    sub |= {"current_period_start": start_at, "current_period_end": end_at}
    if first:
        sub["status"] = "active"
    lines = [*sub["pending_lines"], _cycle_line(sub, start_at, end_at)]
    sub["pending_lines"] = []
    if sub["dunning_invoice"] is not None:  # a new invoice ends the retries of the previous one
        old = run.invoices.get(sub["dunning_invoice"])
        if old is not None:
            old["next_payment_attempt"] = None
        sub |= {"dunning_invoice": None, "retry_at": None}
    inv = _new_invoice(run, sub, lines, now, "subscription_cycle")
    if charge(run, sub, inv, payer, now):
        sub["status"] = "active"
    else:  # the first failure of this invoice: its retries are scheduled
        sub |= {"status": "past_due", "dunning_invoice": inv["id"], "retry_at": inv["next_payment_attempt"]}
    run.emit_subscription("customer.subscription.updated", sub, now)


def step_due(run: Run, sub: dict[str, Any], payer: Payer, now: int) -> None:
    """Do the one thing due at `now` (= next_due(sub))."""
    status = sub["status"]
    if status == "incomplete":
        sub["status"] = "incomplete_expired"
        sub["expires_at"] = None
        inv = run.invoices.get(sub["latest_invoice"] or "")
        if inv is not None and inv["status"] == "open":
            inv |= {"status": "void", "next_payment_attempt": None}
            run.emit("invoice.voided", now, invoice_object(inv))
        run.emit_subscription("customer.subscription.updated", sub, now)
    elif status == "trialing" and now < sub["trial_end"]:
        sub["trial_will_end_sent"] = True
        run.emit_subscription("customer.subscription.trial_will_end", sub, now)
    elif status == "trialing":
        sub["trial_will_end_sent"] = True
        if sub["cancel_at_period_end"]:
            sub |= {"status": "canceled", "ended_at": now}
            run.emit_subscription("customer.subscription.deleted", sub, now)
            return
        _renew(run, sub, payer, now, first=True)
    elif sub["retry_at"] is not None and sub["retry_at"] <= now and sub["retry_at"] < sub["current_period_end"]:
        inv = run.invoices[sub["dunning_invoice"]]
        _after_payment(run, sub, inv, charge(run, sub, inv, payer, now), now)
    elif sub["cancel_at_period_end"]:
        sub |= {"status": "canceled", "ended_at": now, "retry_at": None, "dunning_invoice": None}
        run.emit_subscription("customer.subscription.deleted", sub, now)
    else:
        _renew(run, sub, payer, now, first=False)


def advance(run: Run, subs: list[dict[str, Any]], payers: dict[str, Payer], until: int) -> None:
    """Everything that falls due up to `until`, across `subs`, in time order (ties: by subscription)."""
    queue = [(next_due(sub), sub["id"]) for sub in subs]
    heapq.heapify(queue)
    by_id = {sub["id"]: sub for sub in subs}
    while queue and queue[0][0] <= until:
        due, reference = heapq.heappop(queue)
        sub = by_id[reference]
        run.subscriptions[reference] = sub
        step_due(run, sub, payers[reference], due)
        if (again := next_due(sub)) <= until:
            if again < due:
                raise GatewayError("the simulator's clock went backwards")  # a bug: never loop
            heapq.heappush(queue, (again, reference))


# --- changes asked by the API ------------------------------------------------------------------------
def prorate(amount: int, remaining: int, period: int) -> int:
    """`amount` × remaining / period, rounded half up (Stripe prorates to the second)."""
    sign = -1 if amount < 0 else 1
    return sign * ((abs(amount) * remaining * 2 + period) // (2 * period))


def change(
    run: Run,
    sub: dict[str, Any],
    price: dict[str, Any] | None,
    quantity: int | None,
    payer: Callable[[], Payer],
    now: int,
) -> None:
    """A price and/or quantity change, with `create_prorations` as on Stripe."""
    if sub["status"] in _ENDED:
        raise Permanent(f"A {sub['status']} subscription cannot be updated.", code="subscription_unexpected_state")
    new_price = price or {
        "id": sub["price"],
        "product": sub["product"],
        "product_name": sub["product_name"],
        "unit_amount": sub["unit_amount"],
        "currency": sub["currency"],
        "interval": sub["interval"],
        "interval_count": sub["interval_count"],
    }
    if new_price["currency"] != sub["currency"]:
        raise Permanent("The new price's currency must be the subscription's.", code="parameter_invalid")
    new_quantity = quantity if quantity is not None else sub["quantity"]
    old = dict(sub)
    same_cycle = (new_price["interval"], new_price["interval_count"]) == (sub["interval"], sub["interval_count"])
    set_price(sub, new_price)
    sub["quantity"] = new_quantity
    unchanged = (old["price"], old["quantity"]) == (sub["price"], sub["quantity"])
    if unchanged or sub["status"] in ("trialing", "incomplete"):
        return  # nothing to prorate: no paid period yet
    start_at, end_at = sub["current_period_start"], sub["current_period_end"]
    remaining, period = max(end_at - now, 0), max(end_at - start_at, 1)
    when = _at(now).strftime("%d %b %Y")
    credit = {
        "description": f"Unused time on {old['quantity']} × {old['product_name']} after {when}",
        "amount": -prorate(old["quantity"] * old["unit_amount"], remaining, period),
        "quantity": old["quantity"],
        "price": old["price"],
        "proration": True,
        "period": {"start": now, "end": end_at},
    }
    if not same_cycle:  # Stripe resets the billing cycle to now and invoices at once
        sub |= {"billing_cycle_anchor": now, "cycle": 0, "current_period_start": now}
        sub["current_period_end"] = add_interval(now, sub["interval"], sub["interval_count"], 1)
        lines = [*sub["pending_lines"], credit, _cycle_line(sub, now, sub["current_period_end"])]
        sub["pending_lines"] = []
        inv = _new_invoice(run, sub, lines, now, "subscription_update")
        _after_payment(run, sub, inv, charge(run, sub, inv, payer(), now), now)
        return
    charge_line = {
        "description": f"Remaining time on {sub['quantity']} × {sub['product_name']} after {when}",
        "amount": prorate(sub["quantity"] * sub["unit_amount"], remaining, period),
        "quantity": sub["quantity"],
        "price": sub["price"],
        "proration": True,
        "period": {"start": now, "end": end_at},
    }
    sub["pending_lines"] = [*sub["pending_lines"], credit, charge_line]


def cancel(run: Run, sub: dict[str, Any], at_period_end: bool, now: int) -> None:
    if sub["status"] in _ENDED:
        raise Permanent(f"This subscription is {sub['status']}.", code="subscription_unexpected_state")
    if at_period_end:
        sub |= {"cancel_at_period_end": True, "canceled_at": now}
        run.emit_subscription("customer.subscription.updated", sub, now)
        return
    sub |= {"status": "canceled", "canceled_at": now, "ended_at": now, "retry_at": None, "dunning_invoice": None}
    sub["expires_at"] = None
    run.emit_subscription("customer.subscription.deleted", sub, now)


def pay(run: Run, sub: dict[str, Any] | None, inv: dict[str, Any], payer: Payer, now: int) -> None:
    """A staff retry of an open invoice now."""
    if inv["status"] != "open":
        raise Permanent(f"This invoice is {inv['status']}; only an open invoice can be paid.", code="invoice_not_open")
    paid = charge(run, sub or {"id": inv["subscription"], "customer": inv["customer"]}, inv, payer, now)
    if sub is not None:
        if not paid and inv["id"] == sub["dunning_invoice"]:
            # A manual attempt does not move the automatic schedule (Stripe keeps next_payment_attempt).
            inv["next_payment_attempt"] = sub["retry_at"]
        elif not paid:
            inv["next_payment_attempt"] = None
        if paid:
            _after_payment(run, sub, inv, True, now)


def close(run: Run, sub: dict[str, Any] | None, inv: dict[str, Any], status: str, now: int) -> None:
    """Void an open invoice, or mark it uncollectible; its retries stop."""
    if inv["status"] != "open":
        raise Permanent(f"This invoice is {inv['status']}.", code="invoice_not_open")
    inv |= {"status": status, "next_payment_attempt": None}
    run.emit("invoice.voided" if status == "void" else "invoice.marked_uncollectible", now, invoice_object(inv))
    if sub is not None and sub["dunning_invoice"] == inv["id"]:
        sub |= {"dunning_invoice": None, "retry_at": None}
