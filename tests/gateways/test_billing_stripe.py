"""The Stripe adapter's billing calls: what it sends Stripe and how it reads Stripe's answers (a fake Stripe server).

localstripe has no Prices API (only the legacy Plans), so these run against `stub_stripe`, which answers with
Stripe-shaped objects and records each request.
"""

from urllib.parse import parse_qs

import pytest
import stripe

from gateways.base import Permanent
from gateways.stripe import StripeGateway

API_KEY = "sk_test_billing0123456789"

INVOICE = {
    "id": "in_1",
    "object": "invoice",
    "customer": "cus_1",
    "subscription": "sub_1",
    "status": "open",
    "currency": "usd",
    "amount_due": 900,
    "amount_paid": 0,
    "amount_remaining": 900,
    "attempt_count": 1,
    "next_payment_attempt": None,
    "period_start": 1_700_000_000,
    "period_end": 1_702_592_000,
    "hosted_invoice_url": "https://invoice.stripe.com/i/1",
    "created": 1_700_000_000,
    "lines": {
        "data": [
            {
                "description": "1 × Basic",
                "amount": 900,
                "quantity": 1,
                "price": {"id": "price_basic"},
                "period": {"start": 1_700_000_000, "end": 1_702_592_000},
            }
        ]
    },
    "payment_intent": {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"},
    },
}
SUBSCRIPTION = {
    "id": "sub_1",
    "object": "subscription",
    "customer": "cus_1",
    "status": "incomplete",
    "items": {"data": [{"id": "si_1", "quantity": 2, "price": {"id": "price_basic"}}]},
    "current_period_start": 1_700_000_000,
    "current_period_end": 1_702_592_000,
    "trial_start": None,
    "trial_end": None,
    "cancel_at_period_end": False,
    "canceled_at": None,
    "default_payment_method": "pm_1",
    "latest_invoice": INVOICE,
    "metadata": {"subscription_id": "s1"},
    "created": 1_700_000_000,
}


@pytest.fixture
def stripe_gateway(stub_stripe) -> StripeGateway:
    return StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)


def _form(body: str) -> dict[str, list[str]]:
    return parse_qs(body)


def test_create_subscription_allows_incomplete_and_reads_the_declined_first_invoice(stub_stripe, stripe_gateway):
    stub_stripe.body = SUBSCRIPTION

    sub = stripe_gateway.create_subscription(
        customer_reference="cus_1",
        price_reference="price_basic",
        quantity=2,
        default_payment_method="pm_1",
        trial_days=None,
        metadata={"subscription_id": "s1"},
        idempotency_key="sub_X:create",
    )

    method, path, headers = stub_stripe.requests[-1]
    sent = _form(stub_stripe.bodies[-1])
    assert (method, path, headers["Idempotency-Key"]) == ("POST", "/v1/subscriptions", "sub_X:create")
    assert sent["payment_behavior"] == ["allow_incomplete"]
    assert sent["expand[0]"] == ["latest_invoice.payment_intent"]
    assert (sent["items[0][price]"], sent["items[0][quantity]"]) == (["price_basic"], ["2"])
    assert sent["default_payment_method"] == ["pm_1"]
    assert (sub.reference, sub.status, sub.quantity, sub.price_reference) == ("sub_1", "incomplete", 2, "price_basic")
    invoice = sub.latest_invoice
    assert invoice is not None
    assert (invoice.status, invoice.failure_code, invoice.payment_intent_reference) == ("open", "card_declined", "pi_1")
    assert [(line.amount, line.price_reference) for line in invoice.lines] == [(900, "price_basic")]


def test_a_trial_is_asked_for_in_days(stub_stripe, stripe_gateway):
    stub_stripe.body = SUBSCRIPTION | {"status": "trialing", "latest_invoice": None, "trial_end": 1_701_209_600}

    sub = stripe_gateway.create_subscription(
        customer_reference="cus_1",
        price_reference="price_basic",
        quantity=1,
        default_payment_method="",
        trial_days=14,
        metadata={},
        idempotency_key="k",
    )

    assert _form(stub_stripe.bodies[-1])["trial_period_days"] == ["14"]
    assert (sub.status, sub.latest_invoice, int(sub.trial_end.timestamp())) == ("trialing", None, 1_701_209_600)


def test_an_upgrade_is_prorated_on_the_subscription_item(stub_stripe, stripe_gateway):
    stub_stripe.body = SUBSCRIPTION | {"status": "active"}

    stripe_gateway.update_subscription(
        reference="sub_1",
        price_reference="price_pro",
        quantity=None,
        default_payment_method=None,
        metadata=None,
        idempotency_key="sub_X:update:1",
    )

    assert [(m, p) for m, p, _ in stub_stripe.requests] == [
        ("GET", "/v1/subscriptions/sub_1"),
        ("POST", "/v1/subscriptions/sub_1"),
    ]
    sent = _form(stub_stripe.bodies[-1])
    assert sent["proration_behavior"] == ["create_prorations"]
    assert (sent["items[0][id]"], sent["items[0][price]"], sent["items[0][quantity]"]) == (
        ["si_1"],
        ["price_pro"],
        ["2"],
    )
    assert stub_stripe.requests[-1][2]["Idempotency-Key"] == "sub_X:update:1"


def test_cancel_now_and_at_period_end(stub_stripe, stripe_gateway):
    stub_stripe.body = SUBSCRIPTION | {"status": "canceled", "canceled_at": 1_700_100_000}
    canceled = stripe_gateway.cancel_subscription(reference="sub_1", at_period_end=False, idempotency_key="c1")
    assert stub_stripe.requests[-1][:2] == ("DELETE", "/v1/subscriptions/sub_1") or stub_stripe.requests[-1][
        1
    ].startswith("/v1/subscriptions/sub_1")
    assert canceled.status == "canceled"

    stub_stripe.body = SUBSCRIPTION | {"status": "active", "cancel_at_period_end": True}
    later = stripe_gateway.cancel_subscription(reference="sub_1", at_period_end=True, idempotency_key="c2")
    assert _form(stub_stripe.bodies[-1])["cancel_at_period_end"] == ["true"]
    assert (later.status, later.cancel_at_period_end) == ("active", True)


def test_list_prices_reads_the_expanded_product(stub_stripe, stripe_gateway):
    price = {
        "id": "price_basic",
        "object": "price",
        "product": {"id": "prod_1", "name": "Basic"},
        "unit_amount": 1000,
        "currency": "JPY",
        "recurring": {"interval": "month", "interval_count": 1},
        "active": True,
    }
    stub_stripe.body = {"object": "list", "data": [price], "has_more": False, "url": "/v1/prices"}

    prices = list(stripe_gateway.list_prices())

    assert [(p.reference, p.product_name, p.unit_amount, p.currency) for p in prices] == [
        ("price_basic", "Basic", 1000, "jpy")
    ]
    assert "expand[0]=data.product" in stub_stripe.requests[-1][1].replace("%5B", "[").replace("%5D", "]")


def test_paying_an_invoice_is_off_session_with_the_key(stub_stripe, stripe_gateway):
    stub_stripe.body = INVOICE | {"status": "paid", "amount_paid": 900, "amount_remaining": 0, "payment_intent": "pi_1"}

    paid = stripe_gateway.pay_invoice(reference="in_1", idempotency_key="in_1:pay:1")

    method, path, headers = stub_stripe.requests[-1]
    assert (method, path, headers["Idempotency-Key"]) == ("POST", "/v1/invoices/in_1/pay", "in_1:pay:1")
    assert _form(stub_stripe.bodies[-1])["off_session"] == ["true"]
    assert (paid.status, paid.amount_paid, paid.amount_remaining, paid.failure_code) == ("paid", 900, 0, "")


def test_stripe_refusing_a_subscription_is_permanent(stub_stripe, stripe_gateway):
    stub_stripe.status = 400
    stub_stripe.body = {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such price"}
    }

    with pytest.raises(Permanent) as refused:
        stripe_gateway.retrieve_subscription(reference="sub_nope")

    assert refused.value.code == "resource_missing"


def test_every_request_asks_for_the_api_version_the_parsers_read(stub_stripe, stripe_gateway):
    """The SDK's default version has no `Invoice.payment_intent`: the adapter pins the version it parses."""
    stub_stripe.body = INVOICE | {"status": "paid", "amount_paid": 900, "amount_remaining": 0, "payment_intent": "pi_1"}

    stripe_gateway.pay_invoice(reference="in_1", idempotency_key="in_1:pay:2")
    stripe_gateway.retrieve_invoice(reference="in_1")

    versions = {headers["Stripe-Version"] for _, _, headers in stub_stripe.requests}
    assert versions == {"2024-06-20"}
    assert stripe.api_version != "2024-06-20"  # the SDK's own default is newer: the pin is what sends it
