"""The payments API end to end with PAYMENTS_GATEWAY=stripe, through the SDK, against localstripe."""

import pytest

from payments.models import Payment
from tests.gateways.conftest import API_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_settings(settings, localstripe):
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    return localstripe


def _create(client, key, **extra):
    body = {"amount": 2000, "currency": "usd", "customer_id": "cus_1", **extra}
    return client.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_manual_capture_flow_through_stripe(storefront, stripe_settings):
    created = _create(storefront, "s-1", payment_method="pm_card_visa", capture_method="manual", confirm=True)
    payment_id = created.json()["id"]

    captured = storefront.post(f"/api/v1/payments/{payment_id}/capture/", {"amount": 1200}, format="json")

    assert created.status_code == 201
    assert created.json()["gateway"] == "stripe"
    assert created.json()["gateway_reference"].startswith("pi_")
    assert created.json()["status"] == "requires_capture"
    assert captured.status_code == 200
    assert captured.json()["status"] == "succeeded"
    assert captured.json()["amount_received"] == 1200
    intent = stripe_settings.client.v1.payment_intents.retrieve(created.json()["gateway_reference"])
    assert intent.status == "succeeded"
    assert intent.metadata["payment_id"] == payment_id


def test_decline_through_stripe_is_402(storefront, stripe_settings):
    response = _create(storefront, "s-2", payment_method="pm_card_chargeDeclined", confirm=True)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "card_declined"
    assert Payment.objects.get().status == "failed"
    assert stripe_settings.charge_count() <= 1


def test_three_d_secure_and_cancel_through_stripe(storefront, stripe_settings):
    created = _create(storefront, "s-3", payment_method="pm_card_threeDSecure2Required", confirm=True).json()

    canceled = storefront.post(f"/api/v1/payments/{created['id']}/cancel/", {"reason": "abandoned"}, format="json")

    assert created["status"] == "requires_action"
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    intent = stripe_settings.client.v1.payment_intents.retrieve(created["gateway_reference"])
    assert intent.status == "canceled"


def test_replayed_create_makes_one_stripe_intent(storefront, stripe_settings):
    first = _create(storefront, "s-4", payment_method="pm_card_visa", confirm=True)
    again = _create(storefront, "s-4", payment_method="pm_card_visa", confirm=True)

    intents = list(stripe_settings.client.v1.payment_intents.list({"limit": 100}).auto_paging_iter())
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert len(intents) == 1
    assert stripe_settings.charge_count() == 1
