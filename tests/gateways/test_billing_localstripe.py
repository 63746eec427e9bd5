"""The Stripe adapter's billing against localstripe, through our launcher's Price layer (scripts/localstripe_server.py).

Prices, subscriptions with and without a trial, a decline on the first invoice, cancel now and at period end, and
the `invoice.paid` webhook, checked against what localstripe holds. localstripe has no clock: renewals, trial ends,
dunning and expiry are only exercised on the simulator (tests/gateways/test_billing_simulator.py).
"""

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import stripe
from dateutil.relativedelta import relativedelta

from gateways.base import Permanent
from gateways.stripe import StripeGateway
from tests.helpers import wait_for


def _key() -> str:
    return f"billing-{uuid.uuid4()}"


def _price(gateway: StripeGateway, amount: int = 900, **overrides: Any):
    params: dict[str, Any] = {
        "product_name": "Monthly box",
        "unit_amount": amount,
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
        "trial_period_days": None,
        "idempotency_key": _key(),
    }
    return gateway.create_price(**{**params, **overrides})


def _customer(gateway: StripeGateway, card: str = "pm_card_visa") -> tuple[str, str]:
    """A customer with one saved card (not the customer's invoice default: the subscription names it)."""
    customer = gateway.create_customer(email="ada@example.com", name="Ada", metadata={}, idempotency_key=_key())
    method = gateway.attach_payment_method(
        payment_method=card, customer_reference=customer.reference, idempotency_key=_key()
    )
    return customer.reference, method.reference


def _subscribe(gateway: StripeGateway, customer: str, price: str, method: str, **overrides: Any):
    params: dict[str, Any] = {
        "customer_reference": customer,
        "price_reference": price,
        "quantity": 1,
        "default_payment_method": method,
        "trial_days": None,
        "metadata": {"subscription_id": "sub_local_1"},
        "idempotency_key": _key(),
    }
    return gateway.create_subscription(**{**params, **overrides})


def test_prices_are_created_with_their_product_listed_page_by_page_and_retrieved(gateway, localstripe):
    monthly = _price(gateway, 900, product_name="Monthly box")
    assert monthly.reference.startswith("price_")
    assert monthly.product_reference.startswith("prod_")
    assert (monthly.product_name, monthly.unit_amount, monthly.currency) == ("Monthly box", 900, "usd")
    assert (monthly.interval, monthly.interval_count, monthly.trial_period_days, monthly.active) == (
        "month",
        1,
        None,
        True,
    )
    licence = _price(
        gateway, 12000, product_name="Yearly licence", currency="JPY", interval="year", trial_period_days=14
    )
    assert (licence.currency, licence.interval, licence.trial_period_days) == ("jpy", "year", 14)
    quarterly = _price(gateway, 2500, product_name="Quarterly", interval="month", interval_count=3)
    more = [_price(gateway, 100 + n, product_name=f"Plan {n}") for n in range(4)]

    at_stripe = localstripe.client.v1.prices.retrieve(licence.reference, {"expand": ["product"]})
    assert (at_stripe.type, at_stripe.recurring.interval, at_stripe.recurring.trial_period_days) == (
        "recurring",
        "year",
        14,
    )
    assert (at_stripe.product.id, at_stripe.product.name) == (licence.product_reference, "Yearly licence")
    assert localstripe.client.v1.prices.retrieve(monthly.reference).product == monthly.product_reference  # an id

    localstripe.client.v1.prices.update(quarterly.reference, {"active": False})
    listed = list(gateway.list_prices())  # 7 prices, pages of 5: the adapter pages
    assert [p.reference for p in listed] == [p.reference for p in reversed([monthly, licence, quarterly, *more])]
    by_reference = {p.reference: p for p in listed}
    assert by_reference[quarterly.reference].active is False  # inactive ones are listed too (for sync_prices)
    assert by_reference[quarterly.reference].interval_count == 3
    assert by_reference[licence.reference] == licence
    active = localstripe.client.v1.prices.list({"active": False, "limit": 100}).data
    assert [p.id for p in active] == [quarterly.reference]


def test_creating_a_price_twice_with_one_key_makes_one_product_and_one_price(gateway, localstripe):
    key = _key()
    first = _price(gateway, idempotency_key=key)
    again = _price(gateway, idempotency_key=key)

    assert again == first
    assert [p.id for p in localstripe.client.v1.prices.list({"limit": 100}).data] == [first.reference]
    assert [p.id for p in localstripe.client.v1.products.list({"limit": 100}).data] == [first.product_reference]


def test_without_a_trial_the_first_invoice_is_charged_at_once_with_the_subscriptions_card(gateway, localstripe):
    price = _price(gateway, 900)
    customer, card = _customer(gateway)

    sub = _subscribe(gateway, customer, price.reference, card, quantity=2)

    assert sub.reference.startswith("sub_")
    assert (sub.status, sub.price_reference, sub.quantity, sub.customer_reference) == (
        "active",
        price.reference,
        2,
        customer,
    )
    assert (sub.default_payment_method, sub.metadata, sub.trial_start, sub.trial_end) == (
        card,
        {"subscription_id": "sub_local_1"},
        None,
        None,
    )
    assert sub.current_period_end == sub.current_period_start + relativedelta(months=1)
    invoice = sub.latest_invoice
    assert invoice is not None
    assert invoice.reference.startswith("in_")
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.amount_remaining) == (
        "paid",
        1800,
        1800,
        0,
    )
    assert (invoice.subscription_reference, invoice.currency, invoice.failure_code) == (sub.reference, "usd", "")
    assert [(line.price_reference, line.amount, line.quantity) for line in invoice.lines] == [
        (price.reference, 1800, 2)
    ]

    intent = localstripe.client.v1.payment_intents.retrieve(invoice.payment_intent_reference)
    assert (intent.status, intent.amount, intent.payment_method, intent.customer) == ("succeeded", 1800, card, customer)
    assert localstripe.charge_count() == 1
    assert localstripe.client.v1.customers.retrieve(customer).invoice_settings.default_payment_method is None

    held = localstripe.client.v1.subscriptions.retrieve(sub.reference)
    assert (held["items"].data[0].price.id, held["items"].data[0].price.unit_amount) == (price.reference, 900)
    assert gateway.retrieve_subscription(reference=sub.reference) == sub
    assert gateway.retrieve_invoice(reference=invoice.reference) == invoice
    assert [i.reference for i in gateway.list_invoices(subscription_reference=sub.reference)] == [invoice.reference]


def test_a_trial_is_trialing_with_a_zero_invoice_and_no_charge(gateway, localstripe):
    price = _price(gateway, 900, interval_count=3)
    customer, card = _customer(gateway)

    sub = _subscribe(gateway, customer, price.reference, card, trial_days=14)

    assert sub.status == "trialing"
    assert sub.trial_start is not None
    assert sub.trial_end == sub.trial_start + timedelta(days=14)
    assert (sub.current_period_start, sub.current_period_end) == (sub.trial_start, sub.trial_end)
    invoice = sub.latest_invoice
    assert invoice is not None
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.payment_intent_reference) == (
        "paid",
        0,
        0,
        "",
    )
    assert [(line.price_reference, line.amount) for line in invoice.lines] == [(price.reference, 0)]
    assert localstripe.charge_count() == 0
    assert localstripe.client.v1.payment_intents.list({"limit": 100}).data == []


def test_a_prices_own_trial_applies_when_no_trial_is_asked_for(gateway, localstripe):
    price = _price(gateway, 900, trial_period_days=7)
    customer, card = _customer(gateway)

    sub = _subscribe(gateway, customer, price.reference, card)  # the adapter sends trial_from_plan=true

    assert sub.status == "trialing"
    assert sub.trial_start is not None
    assert sub.trial_end == sub.trial_start + timedelta(days=7)
    assert localstripe.charge_count() == 0


def test_a_decline_on_the_first_invoice_leaves_it_incomplete_and_a_new_card_pays_it(gateway, localstripe):
    price = _price(gateway, 900)
    customer, failing = _customer(gateway, "pm_card_chargeCustomerFail")  # saves, then every charge is declined

    sub = _subscribe(gateway, customer, price.reference, failing)

    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    assert invoice is not None
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.amount_remaining) == ("open", 900, 0, 900)
    assert (invoice.failure_code, invoice.attempt_count) == ("card_declined", 1)
    intent = localstripe.client.v1.payment_intents.retrieve(invoice.payment_intent_reference)
    assert (intent.status, intent.last_payment_error.decline_code) == ("requires_payment_method", "generic_decline")

    retried = gateway.pay_invoice(reference=invoice.reference, idempotency_key=_key())  # Stripe: 402, read back
    assert (retried.status, retried.failure_code, retried.attempt_count) == ("open", "card_declined", 2)

    visa = gateway.attach_payment_method(
        payment_method="pm_card_visa", customer_reference=customer, idempotency_key=_key()
    )
    gateway.update_subscription(
        reference=sub.reference,
        price_reference=None,
        quantity=None,
        default_payment_method=visa.reference,
        metadata=None,
        idempotency_key=_key(),
    )
    paid = gateway.pay_invoice(reference=invoice.reference, idempotency_key=_key())
    assert (paid.status, paid.amount_paid, paid.amount_remaining, paid.failure_code) == ("paid", 900, 0, "")
    assert paid.payment_intent_reference == invoice.payment_intent_reference  # the same intent, attempted again
    assert gateway.retrieve_subscription(reference=sub.reference).status == "active"


def test_an_unknown_or_inactive_price_is_refused_permanently(gateway, localstripe):
    price = _price(gateway, 900)
    customer, card = _customer(gateway)
    localstripe.client.v1.prices.update(price.reference, {"active": False})

    with pytest.raises(Permanent) as inactive:
        _subscribe(gateway, customer, price.reference, card)
    with pytest.raises(Permanent) as unknown:
        _subscribe(gateway, customer, "price_missing", card)

    assert (inactive.value.code, unknown.value.code) == ("parameter_invalid", "resource_missing")
    assert localstripe.client.v1.subscriptions.list({"status": "all"}).data == []


def test_cancel_now_and_at_period_end(gateway, localstripe):
    price = _price(gateway, 900)
    customer, card = _customer(gateway)
    now_sub = _subscribe(gateway, customer, price.reference, card)
    later_sub = _subscribe(gateway, customer, price.reference, card)
    before = datetime.now(UTC).replace(microsecond=0)

    canceled = gateway.cancel_subscription(reference=now_sub.reference, at_period_end=False, idempotency_key=_key())
    ending = gateway.cancel_subscription(reference=later_sub.reference, at_period_end=True, idempotency_key=_key())

    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    assert canceled.canceled_at >= before
    assert canceled.latest_invoice is not None
    assert canceled.latest_invoice.status == "paid"
    assert (ending.status, ending.cancel_at_period_end) == ("active", True)
    assert ending.canceled_at is not None
    assert ending.canceled_at >= before
    held = localstripe.client.v1.subscriptions.retrieve(later_sub.reference)
    assert held.cancel_at == held.current_period_end
    assert gateway.retrieve_subscription(reference=now_sub.reference).status == "canceled"

    window = gateway.list_subscriptions(
        created_gte=before - timedelta(minutes=1), created_lt=before + timedelta(hours=1)
    )
    assert {(s.reference, s.status) for s in window} == {
        (now_sub.reference, "canceled"),
        (later_sub.reference, "active"),
    }


@pytest.fixture
def webhook_receiver(localstripe) -> Iterator[tuple[str, list[tuple[bytes, str]]]]:
    """A server localstripe posts its invoice events to (payload, Stripe-Signature); afterwards to nobody."""
    received: list[tuple[bytes, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.rfile.read(int(self.headers["Content-Length"])), self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    secret = "whsec_billing_localstripe"
    target = f"{localstripe.url}/_config/webhooks/billing-tests"
    events = ["invoice.paid", "invoice.payment_succeeded"]
    body = {"url": f"http://127.0.0.1:{server.server_address[1]}/", "secret": secret, "events": events}
    requests.post(target, json=body, timeout=5).raise_for_status()
    yield secret, received
    requests.post(target, json={**body, "events": ["none.none"]}, timeout=5).raise_for_status()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_paying_the_first_invoice_sends_a_signed_invoice_paid_webhook(gateway, localstripe, webhook_receiver):
    secret, received = webhook_receiver
    price = _price(gateway, 900)
    customer, card = _customer(gateway)

    sub = _subscribe(gateway, customer, price.reference, card)
    invoice = sub.latest_invoice
    assert invoice is not None

    def about_this_invoice() -> list[Any]:
        events = [stripe.Webhook.construct_event(payload, signature, secret) for payload, signature in list(received)]
        return [e for e in events if e.data.object.id == invoice.reference]  # an earlier test's event may land too

    events = wait_for(lambda: len(about_this_invoice()) == 2 and about_this_invoice(), timeout=15)
    assert sorted(e.type for e in events) == ["invoice.paid", "invoice.payment_succeeded"]
    for event in events:
        sent = event.data.object
        assert (sent.status, sent.amount_paid, sent.subscription) == ("paid", 900, sub.reference)
        assert sent.payment_intent == invoice.payment_intent_reference
