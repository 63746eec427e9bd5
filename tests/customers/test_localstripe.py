"""The contract's customers section end to end on the Stripe adapter against localstripe (our launcher, extended).

The same API calls as on the simulator, with PAYMENTS_GATEWAY=stripe: the customer and its cards live in
localstripe, and what the service answers is checked against what localstripe holds. What only real Stripe can
tell (3-D Secure on a setup intent, the exact decline codes at attach) is listed in the #17 note.
"""

import pytest

from customers.models import PaymentMethod
from payments.models import Payment
from tests.conftest import new_key
from tests.gateways.conftest import API_KEY, localstripe, localstripe_url  # noqa: F401 - localstripe fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_stripe(settings, localstripe):  # noqa: F811 - the fixture imported above
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    return localstripe


def _attach(client, customer_id: str, token: str, **extra):
    return client.post(
        f"/api/v1/customers/{customer_id}/payment_methods/",
        {"payment_method": token, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )


def test_a_customer_saves_cards_switches_default_is_charged_and_detaches_on_stripe(storefront, on_stripe):
    put = storefront.put("/api/v1/customers/cus_ls/", {"email": "ada@example.com"}, format="json")
    assert put.status_code == 201, put.content
    reference = put.json()["gateway_reference"]
    assert reference.startswith("cus_")

    visa = _attach(storefront, "cus_ls", "pm_card_visa", set_default=True)
    master = _attach(storefront, "cus_ls", "pm_card_mastercard")
    assert (visa.status_code, master.status_code) == (201, 201), (visa.content, master.content)
    assert (visa.json()["card"]["brand"], visa.json()["card"]["last4"]) == ("visa", "4242")
    held = on_stripe.client.v1.payment_methods.list({"customer": reference, "type": "card"}).data
    assert {m.id for m in held} == {visa.json()["gateway_reference"], master.json()["gateway_reference"]}

    switched = storefront.put(
        "/api/v1/customers/cus_ls/", {"default_payment_method": master.json()["id"]}, format="json"
    )
    assert switched.json()["default_payment_method"] == master.json()["id"]
    at_stripe = on_stripe.client.v1.customers.retrieve(reference)
    assert at_stripe.invoice_settings.default_payment_method == master.json()["gateway_reference"]
    listed = storefront.get("/api/v1/customers/cus_ls/payment_methods/").json()["results"]
    assert [m["id"] for m in listed][0] == master.json()["id"]  # default first

    paid = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_ls", "payment_method": visa.json()["id"],
         "confirm": True, "off_session": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )  # fmt: skip
    assert (paid.status_code, paid.json()["status"]) == (201, "succeeded"), paid.content
    intent = on_stripe.client.v1.payment_intents.retrieve(paid.json()["gateway_reference"])
    assert (intent.customer, intent.payment_method) == (reference, visa.json()["gateway_reference"])

    detached = storefront.delete(f"/api/v1/payment_methods/{visa.json()['id']}/")
    assert (detached.status_code, detached.json()["status"]) == (200, "detached")
    still = on_stripe.client.v1.payment_methods.list({"customer": reference, "type": "card"}).data
    assert {m.id for m in still} == {master.json()["gateway_reference"]}
    again = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_ls", "payment_method": visa.json()["id"],
         "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )  # fmt: skip
    assert (again.status_code, again.json()["error"]["param"]) == (400, "payment_method")
    assert Payment.objects.count() == 1


def test_off_session_a_card_needing_authentication_is_402_on_stripe(storefront, on_stripe):
    saved = _attach(storefront, "cus_3ds", "pm_card_authenticationRequired")
    assert saved.status_code == 201, saved.content

    paid = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_3ds", "payment_method": saved.json()["id"],
         "confirm": True, "off_session": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )  # fmt: skip

    assert paid.status_code == 402, paid.content
    assert paid.json()["error"]["code"] == "authentication_required"
    assert Payment.objects.get(customer_id="cus_3ds").status == "failed"


def test_a_card_stripe_refuses_to_save_is_402_and_nothing_is_saved(storefront, on_stripe):
    refused = _attach(storefront, "cus_dec", "pm_card_chargeDeclined")

    assert refused.status_code == 402, refused.content
    assert refused.json()["error"]["type"] == "card_error"
    assert not PaymentMethod.objects.exists()


def test_setup_future_usage_saves_the_card_at_stripe_and_here(storefront, on_stripe):
    paid = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_sfu", "payment_method": "pm_card_visa",
         "confirm": True, "setup_future_usage": "off_session"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )  # fmt: skip

    assert (paid.status_code, paid.json()["status"]) == (201, "succeeded"), paid.content
    listed = storefront.get("/api/v1/customers/cus_sfu/payment_methods/").json()["results"]
    assert [(m["card"]["last4"], m["status"]) for m in listed] == [("4242", "active")]
    reference = storefront.get("/api/v1/customers/cus_sfu/").json()["gateway_reference"]
    held = on_stripe.client.v1.payment_methods.list({"customer": reference, "type": "card"}).data
    assert [m.id for m in held] == [listed[0]["gateway_reference"]]
