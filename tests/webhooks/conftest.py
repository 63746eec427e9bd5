"""Webhook fixtures: a signing secret, signed deliveries processed inline, payments in a given state."""

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from django.http import HttpResponse
from django.test import Client

from gateways.simulator import SimulatorGateway
from payments.models import Payment
from tests.gateways.conftest import localstripe, localstripe_url  # noqa: F401 - localstripe fixtures, shared

SECRET = "whsec_test_payment_service_0123456789abcdef"
URL = "/api/v1/webhooks/stripe/"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def webhook_secret(settings) -> str:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return SECRET


def body_of(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event, indent=2)


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send (the SDK's own helper)."""
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def post(body: str | bytes, signature: str | None, client: Client | None = None) -> HttpResponse:
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return (client or Client()).post(URL, data=body, content_type="application/json", **headers)


def send(event: dict[str, Any] | str, client: Client | None = None) -> HttpResponse:
    """Deliver a correctly signed event (processing runs wherever the test's Celery setup runs it)."""
    body = body_of(event)
    return post(body, sign(body), client)


@pytest.fixture
def deliver(tasks_inline, django_capture_on_commit_callbacks) -> Callable[[dict[str, Any] | str], HttpResponse]:
    """Deliver a signed event and process it inline right after commit, as a worker would."""

    def deliver_one(event: dict[str, Any] | str) -> HttpResponse:
        with django_capture_on_commit_callbacks(execute=True):
            response = send(event)
        assert response.status_code == 200, response.content
        return response

    return deliver_one


@pytest.fixture
def payment_in(storefront) -> Callable[..., Payment]:
    """A payment made through our API on the simulator, brought to `status` the way a shop would."""

    def make(status: str, *, amount: int = 2000) -> Payment:
        body: dict[str, Any] = {"amount": amount, "currency": "usd", "customer_id": "cus_webhooks"}
        if status in {"requires_confirmation", "processing"}:
            body["payment_method"] = "pm_card_visa"
        elif status == "requires_action":
            body.update(payment_method="pm_card_threeDSecure2Required", confirm=True)
        elif status == "requires_capture":
            body.update(payment_method="pm_card_visa", capture_method="manual", confirm=True)
        elif status == "succeeded":
            body.update(payment_method="pm_card_visa", confirm=True)
        created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"wh-{next(_keys)}")
        assert created.status_code == 201, created.json()
        if status == "processing":  # the confirm's answer is lost: a worker (or a webhook) must finish it
            SimulatorGateway.inject_fault("confirm_intent", "timeout")
            response = storefront.post(f"/api/v1/payments/{created.json()['id']}/confirm/", {}, format="json")
            assert response.status_code == 502
        payment = Payment.objects.get(public_id=created.json()["id"])
        assert payment.status == status
        return payment

    return make
