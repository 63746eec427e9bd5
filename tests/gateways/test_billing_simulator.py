"""The simulator's billing engine on its clock: trials, renewals, dunning, proration, expiry, idempotency, events."""

import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings

from gateways.base import Permanent
from gateways.billing import SubscriptionResult
from gateways.simulator import SimulatorGateway
from gateways.simulator import store as store_module
from gateways.simulator.billing import add_interval
from tests.gateways.redis_monitor import monitored

DAY = 86_400
CLOCK = "client_1"


@pytest.fixture(params=["redis", "memory"])
def sim(request, settings) -> SimulatorGateway:
    """The simulator on the test Redis (the cache's), and again on its in-process store."""
    if request.param == "memory":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        request.getfixturevalue("monkeypatch").setattr(store_module, "_stores", {})
    return SimulatorGateway()


@pytest.fixture
def redis_sim() -> SimulatorGateway:
    return SimulatorGateway()


def _customer(sim: SimulatorGateway, card: str = "pm_card_visa", key: str = "c1") -> tuple[str, str]:
    """A customer with `card` saved as its default payment method: (cus_..., pm_...)."""
    customer = sim.create_customer(email="ada@example.com", name="Ada", metadata={}, idempotency_key=key)
    method = sim.attach_payment_method(
        payment_method=card, customer_reference=customer.reference, idempotency_key=key + ":att"
    )
    sim.update_customer(
        reference=customer.reference,
        email="ada@example.com",
        name="Ada",
        metadata={},
        default_payment_method=method.reference,
        idempotency_key=key + ":default",
    )
    return customer.reference, method.reference


def _subscribe(sim: SimulatorGateway, customer: str, key: str = "sub_1", **overrides: Any) -> SubscriptionResult:
    params: dict[str, Any] = {
        "customer_reference": customer,
        "price_reference": "price_basic_monthly",
        "quantity": 1,
        "default_payment_method": "",
        "trial_days": None,
        "metadata": {"subscription_id": key},
        "idempotency_key": key,
        "test_clock": CLOCK,
    }
    return sim.create_subscription(**(params | overrides))


def _advance(sim: SimulatorGateway, seconds: int, clock: str = CLOCK) -> list[dict[str, Any]]:
    _, events = sim.advance_clock(clock=clock, seconds=seconds)
    return events


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def _ts(moment: datetime | None) -> int:
    assert moment is not None
    return int(moment.timestamp())


def _month_after(moment: datetime, months: int) -> int:
    return add_interval(_ts(moment), "month", 1, months)


@pytest.mark.parametrize(
    ("price", "quantity", "currency", "amount"),
    [("price_basic_monthly", 2, "usd", 1800), ("price_jpy_monthly", 3, "jpy", 3000)],
)
def test_a_trial_then_a_year_of_monthly_renewals(sim, price, quantity, currency, amount):
    customer, method = _customer(sim)
    sub = _subscribe(sim, customer, price_reference=price, quantity=quantity, trial_days=14)
    start = sub.created_at
    assert start is not None

    assert (sub.status, sub.latest_invoice, sub.trial_start) == ("trialing", None, start)
    assert sub.trial_end == sub.current_period_end == start + timedelta(days=14)
    assert sim.clock_now(clock=CLOCK) == start

    before = _advance(sim, 11 * DAY - 1)
    will_end = _advance(sim, 1)
    assert _types(before) == ["customer.subscription.created"]
    assert _types(will_end) == ["customer.subscription.trial_will_end"]
    assert will_end[0]["created"] == _ts(start) + 11 * DAY
    assert will_end[0]["data"]["object"]["status"] == "trialing"

    trial_end = _advance(sim, 3 * DAY)
    assert _types(trial_end) == [
        "invoice.created",
        "invoice.finalized",
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.updated",
    ]
    active = sim.retrieve_subscription(reference=sub.reference)
    assert active.status == "active"
    assert active.latest_invoice is not None
    assert (active.latest_invoice.status, active.latest_invoice.amount_paid) == ("paid", amount)
    assert active.current_period_start == start + timedelta(days=14)
    assert _ts(active.current_period_end) == _month_after(start + timedelta(days=14), 1)

    started = time.perf_counter()
    now, rest = sim.advance_clock(clock=CLOCK, seconds=(365 - 14) * DAY)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5, elapsed
    assert now == start + timedelta(days=365)
    invoices = list(sim.list_invoices(subscription_reference=sub.reference))
    assert len(invoices) == 12
    assert [i.status for i in invoices] == ["paid"] * 12
    assert {(i.currency, i.amount_due, i.amount_paid, i.amount_remaining) for i in invoices} == {
        (currency, amount, amount, 0)
    }
    first_period = start + timedelta(days=14)
    assert [_ts(i.period_start) for i in reversed(invoices)] == [_month_after(first_period, n) for n in range(12)]
    assert [line.amount for i in invoices for line in i.lines] == [amount] * 12
    intents = [
        sim.retrieve_intent(reference=i.payment_intent_reference) for i in invoices if i.payment_intent_reference
    ]
    assert len(intents) == 12
    assert {(i.status, i.amount, i.amount_received, i.currency, i.payment_method) for i in intents} == {
        ("succeeded", amount, amount, currency, method)
    }
    assert {i.metadata["invoice"] for i in intents} == {i.reference for i in invoices}
    listed = list(sim.list_intents(created_gte=start, created_lt=now + timedelta(seconds=1)))
    assert sorted(i.reference for i in listed) == sorted(i.reference for i in intents)
    counts = Counter(_types(rest))
    assert counts["invoice.paid"] == counts["payment_intent.succeeded"] == counts["invoice.created"] == 11
    created = [e["created"] for e in before + will_end + trial_end + rest]
    assert created == sorted(created)
    renewed = sim.retrieve_subscription(reference=sub.reference)
    assert _ts(renewed.current_period_end) == _month_after(first_period, 12)


def _renewal_declines(sim: SimulatorGateway) -> tuple[SubscriptionResult, int]:
    """An active subscription whose default card is then one that declines every charge: (sub, its period end)."""
    customer, _ = _customer(sim)
    failing = sim.attach_payment_method(
        payment_method="pm_card_chargeCustomerFail", customer_reference=customer, idempotency_key="fail:att"
    )
    sub = _subscribe(sim, customer)
    assert sub.status == "active"
    sim.update_subscription(
        reference=sub.reference,
        price_reference=None,
        quantity=None,
        default_payment_method=failing.reference,
        metadata=None,
        idempotency_key="switch",
    )
    return sub, _ts(sub.current_period_end)


@pytest.mark.parametrize("final", ["canceled", "unpaid"])
def test_dunning_retries_on_days_1_3_5_7_then_cancels_or_leaves_unpaid(sim, settings, final):
    settings.SIMULATOR_DUNNING_FINAL_STATUS = final
    sub, period_end = _renewal_declines(sim)
    now = _ts(sim.clock_now(clock=CLOCK))

    failed = _advance(sim, period_end - now)
    past_due = sim.retrieve_subscription(reference=sub.reference)
    invoice = past_due.latest_invoice
    assert invoice is not None
    assert past_due.status == "past_due"
    assert (invoice.status, invoice.attempt_count, invoice.failure_code) == ("open", 1, "card_declined")
    assert _ts(invoice.next_payment_attempt) == period_end + DAY
    assert _types(failed)[-3:] == [
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert failed[-1]["data"]["object"]["status"] == "past_due"

    attempts = []
    for day in (1, 3, 5):
        _advance(sim, period_end + day * DAY - _ts(sim.clock_now(clock=CLOCK)))
        retried = sim.retrieve_invoice(reference=invoice.reference)
        attempts.append((retried.attempt_count, _ts(retried.next_payment_attempt) - period_end))
    assert attempts == [(2, 3 * DAY), (3, 5 * DAY), (4, 7 * DAY)]
    assert sim.retrieve_subscription(reference=sub.reference).status == "past_due"

    last = _advance(sim, 2 * DAY)
    ended = sim.retrieve_subscription(reference=sub.reference)
    closed = sim.retrieve_invoice(reference=invoice.reference)
    assert (closed.attempt_count, closed.next_payment_attempt) == (5, None)
    assert ended.status == final
    if final == "canceled":
        assert (closed.status, _ts(ended.canceled_at)) == ("uncollectible", period_end + 7 * DAY)
        assert _types(last)[-2:] == ["invoice.marked_uncollectible", "customer.subscription.deleted"]
    else:
        assert (closed.status, ended.canceled_at) == ("open", None)
        assert _types(last)[-1] == "customer.subscription.updated"
    # Nothing more happens: no renewal of an ended (or unpaid) subscription.
    assert _advance(sim, 90 * DAY) == []
    assert len(list(sim.list_invoices(subscription_reference=sub.reference))) == 2
    assert sim.retrieve_intent(reference=closed.payment_intent_reference).status == "requires_payment_method"


def test_a_retry_that_succeeds_makes_it_active_again(redis_sim):
    sim = redis_sim
    sub, period_end = _renewal_declines(sim)
    _advance(sim, period_end - _ts(sim.clock_now(clock=CLOCK)))
    invoice = sim.retrieve_subscription(reference=sub.reference).latest_invoice
    assert invoice is not None
    sim.update_subscription(
        reference=sub.reference,
        price_reference=None,
        quantity=None,
        default_payment_method="pm_card_visa",
        metadata=None,
        idempotency_key="fix",
    )

    events = _advance(sim, DAY)

    assert sim.retrieve_subscription(reference=sub.reference).status == "active"
    paid = sim.retrieve_invoice(reference=invoice.reference)
    assert (paid.status, paid.attempt_count, paid.amount_paid, paid.next_payment_attempt) == ("paid", 2, 900, None)
    assert _types(events)[-3:] == ["payment_intent.succeeded", "invoice.paid", "customer.subscription.updated"]


def test_cancel_at_period_end_keeps_it_active_until_then(sim):
    customer, _ = _customer(sim)
    sub = _subscribe(sim, customer)

    asked = sim.cancel_subscription(reference=sub.reference, at_period_end=True, idempotency_key="cancel")

    assert (asked.status, asked.cancel_at_period_end, asked.canceled_at) == ("active", True, sub.created_at)
    events = _advance(sim, _ts(sub.current_period_end) - _ts(sub.created_at) - 1)
    assert sim.retrieve_subscription(reference=sub.reference).status == "active"
    assert "customer.subscription.deleted" not in _types(events)
    ended_events = _advance(sim, 1)
    ended = sim.retrieve_subscription(reference=sub.reference)
    assert ended.status == "canceled"
    assert _types(ended_events) == ["customer.subscription.deleted"]
    assert ended_events[0]["data"]["object"]["ended_at"] == _ts(sub.current_period_end)
    assert len(list(sim.list_invoices(subscription_reference=sub.reference))) == 1
    with pytest.raises(Permanent) as refused:
        sim.cancel_subscription(reference=sub.reference, at_period_end=False, idempotency_key="again")
    assert refused.value.code == "subscription_unexpected_state"


def test_cancel_now(sim):
    customer, _ = _customer(sim)
    sub = _subscribe(sim, customer)
    _advance(sim, 5 * DAY)

    canceled = sim.cancel_subscription(reference=sub.reference, at_period_end=False, idempotency_key="cancel")

    assert (canceled.status, canceled.canceled_at) == ("canceled", sub.created_at + timedelta(days=5))
    assert _types(_advance(sim, 60 * DAY)) == ["customer.subscription.deleted"]


def _prorated(amount: int, remaining: int, period: int) -> int:
    return (amount * remaining * 2 + period) // (2 * period)


def test_an_upgrade_is_prorated_on_the_next_invoice(sim):
    customer, _ = _customer(sim)
    sub = _subscribe(sim, customer, quantity=2)
    start, end = _ts(sub.current_period_start), _ts(sub.current_period_end)
    _advance(sim, 10 * DAY)

    upgraded = sim.update_subscription(
        reference=sub.reference,
        price_reference="price_pro_monthly",
        quantity=3,
        default_payment_method=None,
        metadata={"plan": "pro"},
        idempotency_key="upgrade",
    )

    assert (upgraded.price_reference, upgraded.quantity, upgraded.metadata["plan"]) == ("price_pro_monthly", 3, "pro")
    assert upgraded.current_period_end == sub.current_period_end  # same interval: the cycle stays
    assert len(list(sim.list_invoices(subscription_reference=sub.reference))) == 1  # nothing charged now
    _advance(sim, end - start - 10 * DAY)
    renewal = sim.retrieve_subscription(reference=sub.reference).latest_invoice
    assert renewal is not None
    remaining, period = end - start - 10 * DAY, end - start
    credit, charge = -_prorated(2 * 900, remaining, period), _prorated(3 * 2900, remaining, period)
    assert [(line.amount, line.quantity, line.price_reference) for line in renewal.lines] == [
        (credit, 2, "price_basic_monthly"),
        (charge, 3, "price_pro_monthly"),
        (3 * 2900, 3, "price_pro_monthly"),
    ]
    assert renewal.amount_due == renewal.amount_paid == credit + charge + 3 * 2900
    assert renewal.lines[0].period_start == sub.created_at + timedelta(days=10)
    intent = sim.retrieve_intent(reference=renewal.payment_intent_reference)
    assert (intent.amount, intent.status) == (renewal.amount_due, "succeeded")


def test_a_change_of_interval_resets_the_cycle_and_invoices_now(redis_sim):
    sim = redis_sim
    customer, _ = _customer(sim)
    sub = _subscribe(sim, customer)
    start, end = _ts(sub.current_period_start), _ts(sub.current_period_end)
    _advance(sim, 3 * DAY)

    yearly = sim.update_subscription(
        reference=sub.reference,
        price_reference="price_pro_yearly",
        quantity=None,
        default_payment_method=None,
        metadata=None,
        idempotency_key="yearly",
    )

    invoice = yearly.latest_invoice
    assert invoice is not None
    credit = -_prorated(900, end - start - 3 * DAY, end - start)
    assert [line.amount for line in invoice.lines] == [credit, 29000]
    assert (invoice.status, invoice.amount_paid) == ("paid", 29000 + credit)
    assert yearly.current_period_start == sub.created_at + timedelta(days=3)
    assert _ts(yearly.current_period_end) == add_interval(start + 3 * DAY, "year", 1, 1)


@pytest.mark.parametrize(
    ("card", "code"),
    [("pm_card_chargeCustomerFail", "card_declined"), ("pm_card_authenticationRequired", "authentication_required")],
)
def test_a_first_invoice_declined_leaves_it_incomplete_then_expired_after_23_hours(sim, card, code):
    customer, method = _customer(sim, card)

    sub = _subscribe(sim, customer)

    invoice = sub.latest_invoice
    assert invoice is not None
    assert sub.status == "incomplete"
    assert (invoice.status, invoice.failure_code, invoice.attempt_count, invoice.amount_paid) == ("open", code, 1, 0)
    assert invoice.next_payment_attempt is None  # Stripe does not retry a first invoice
    intent = sim.retrieve_intent(reference=invoice.payment_intent_reference)
    assert (intent.status, intent.failure_code, intent.payment_method) == ("requires_payment_method", code, method)
    assert intent.metadata == {"invoice": invoice.reference, "subscription": sub.reference}
    created = _advance(sim, 23 * 3600 - 1)
    assert _types(created) == [
        "invoice.created",
        "invoice.finalized",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.created",
    ]
    assert sim.retrieve_subscription(reference=sub.reference).status == "incomplete"

    expired = _advance(sim, 1)

    assert sim.retrieve_subscription(reference=sub.reference).status == "incomplete_expired"
    assert sim.retrieve_invoice(reference=invoice.reference).status == "void"
    assert _types(expired) == ["invoice.voided", "customer.subscription.updated"]
    assert _advance(sim, 365 * DAY) == []


def test_paying_the_open_first_invoice_makes_it_active(redis_sim):
    sim = redis_sim
    customer, _ = _customer(sim, "pm_card_chargeCustomerFail")
    sub = _subscribe(sim, customer)
    invoice = sub.latest_invoice
    assert invoice is not None

    again = sim.pay_invoice(reference=invoice.reference, idempotency_key="retry_1")
    assert (again.status, again.attempt_count, again.failure_code) == ("open", 2, "card_declined")
    sim.update_subscription(
        reference=sub.reference,
        price_reference=None,
        quantity=None,
        default_payment_method="pm_card_visa",
        metadata=None,
        idempotency_key="fix",
    )
    paid = sim.pay_invoice(reference=invoice.reference, idempotency_key="retry_2")

    assert (paid.status, paid.amount_paid, paid.attempt_count) == ("paid", 900, 3)
    assert paid.payment_intent_reference == invoice.payment_intent_reference  # one intent per invoice
    assert sim.retrieve_subscription(reference=sub.reference).status == "active"
    assert sim.pay_invoice(reference=invoice.reference, idempotency_key="retry_2") == paid  # replayed
    with pytest.raises(Permanent):
        sim.pay_invoice(reference=invoice.reference, idempotency_key="retry_3")
    assert _advance(sim, 23 * 3600)[-1]["data"]["object"]["status"] == "active"


def test_the_same_key_twice_makes_one_subscription_and_one_charge(sim):
    customer, _ = _customer(sim)

    first = _subscribe(sim, customer, key="sub_same")
    second = _subscribe(sim, customer, key="sub_same")

    assert first == second
    assert sim.calls_for_key("sub_same") == 2
    assert sim.performed_count("create_subscription") == 1
    assert first.created_at is not None
    window = list(sim.list_subscriptions(created_gte=first.created_at, created_lt=first.created_at + timedelta(1)))
    assert window == [first]
    intents = list(sim.list_intents(created_gte=first.created_at, created_lt=first.created_at + timedelta(1)))
    assert len(intents) == 1
    assert _types(_advance(sim, 1)).count("customer.subscription.created") == 1


def test_an_unknown_or_inactive_price_and_an_unknown_customer_are_refused(sim):
    customer, _ = _customer(sim)
    with pytest.raises(Permanent) as unknown:
        _subscribe(sim, customer, price_reference="price_nope")
    assert unknown.value.code == "resource_missing"
    with pytest.raises(Permanent):
        _subscribe(sim, "cus_nope", key="sub_2")
    with pytest.raises(Permanent):
        _subscribe(sim, customer, key="sub_3", quantity=0)
    other, _ = _customer(sim, key="c2")
    foreign = sim.attach_payment_method(payment_method="pm_card_visa", customer_reference=other, idempotency_key="f")
    with pytest.raises(Permanent):
        _subscribe(sim, customer, key="sub_4", default_payment_method=foreign.reference)


def test_the_catalog_and_a_created_price(sim):
    shipped = {p.reference: (p.unit_amount, p.currency, p.interval) for p in sim.list_prices()}
    assert shipped == {
        "price_basic_monthly": (900, "usd", "month"),
        "price_pro_monthly": (2900, "usd", "month"),
        "price_pro_yearly": (29000, "usd", "year"),
        "price_jpy_monthly": (1000, "jpy", "month"),
    }

    price = sim.create_price(
        product_name="Box",
        unit_amount=1250,
        currency="EUR",
        interval="week",
        interval_count=2,
        trial_period_days=7,
        idempotency_key="price_1",
    )
    again = sim.create_price(
        product_name="Box",
        unit_amount=1250,
        currency="EUR",
        interval="week",
        interval_count=2,
        trial_period_days=7,
        idempotency_key="price_1",
    )

    assert again == price
    assert (price.currency, price.product_name, price.trial_period_days) == ("eur", "Box", 7)
    assert [p.reference for p in sim.list_prices()][-1] == price.reference
    customer, _ = _customer(sim)
    sub = _subscribe(sim, customer, price_reference=price.reference)  # the price's own trial applies
    assert (sub.status, sub.trial_end) == ("trialing", sub.created_at + timedelta(days=7))
    events = _advance(sim, 7 * DAY + 14 * DAY)
    assert [e["data"]["object"]["amount_paid"] for e in events if e["type"] == "invoice.paid"] == [1250, 1250]


def test_the_events_are_shaped_like_stripes(redis_sim):
    sim = redis_sim
    customer, method = _customer(sim)
    sub = _subscribe(sim, customer, metadata={"subscription_id": "s1"})

    events = _advance(sim, 1)

    assert {e["object"] for e in events} == {"event"}
    assert all(e["id"].startswith("evt_") and e["data"]["object"] for e in events)
    by_type = {e["type"]: e["data"]["object"] for e in events}
    subscription = by_type["customer.subscription.created"]
    assert subscription["id"] == sub.reference
    assert subscription["object"] == "subscription"
    assert subscription["items"]["data"][0]["price"]["id"] == "price_basic_monthly"
    assert subscription["items"]["data"][0]["quantity"] == subscription["quantity"] == 1
    assert subscription["current_period_end"] == _ts(sub.current_period_end)
    assert subscription["latest_invoice"] == sub.latest_invoice.reference if sub.latest_invoice else False
    assert (subscription["metadata"], subscription["customer"]) == ({"subscription_id": "s1"}, customer)
    for name in ("trial_start", "trial_end", "canceled_at", "cancel_at_period_end", "default_payment_method"):
        assert name in subscription
    invoice = by_type["invoice.paid"]
    assert invoice["object"] == "invoice"
    assert (invoice["subscription"], invoice["customer"], invoice["status"]) == (sub.reference, customer, "paid")
    assert (invoice["amount_due"], invoice["amount_paid"], invoice["amount_remaining"]) == (900, 900, 0)
    assert invoice["lines"]["data"][0]["amount"] == 900
    assert invoice["lines"]["data"][0]["period"] == {
        "start": _ts(sub.current_period_start),
        "end": _ts(sub.current_period_end),
    }
    for name in ("attempt_count", "next_payment_attempt", "period_start", "period_end", "hosted_invoice_url"):
        assert name in invoice
    intent = by_type["payment_intent.succeeded"]
    assert (intent["object"], intent["id"], intent["invoice"]) == (
        "payment_intent",
        invoice["payment_intent"],
        invoice["id"],
    )
    assert (intent["amount"], intent["payment_method"], intent["status"]) == (900, method, "succeeded")
    assert by_type["invoice.created"]["status"] == "draft"
    assert by_type["invoice.finalized"]["status"] == "open"
    assert _advance(sim, 1) == []  # each event is given once


def test_advancing_one_clock_reads_only_its_due_subscriptions(redis_sim):
    sim = redis_sim
    customer, _ = _customer(sim)
    for n in range(40):  # another client's clock, busy
        _subscribe(sim, customer, key=f"other_{n}", test_clock="client_2")
    _subscribe(sim, customer, key="mine")
    _advance(sim, 1)

    with monitored(settings.REDIS_URL) as monitor:
        year = monitor.count(lambda: _advance(sim, 365 * DAY))
        idle = monitor.count(lambda: _advance(sim, DAY))

    assert set(year.names) == {"EVALSHA"}
    assert len(year.names) <= 5, year.names
    assert len(idle.names) <= 4, idle.names
    assert len(list(sim.list_invoices(subscription_reference=_subscribe(sim, customer, key="mine").reference))) == 13
