"""Fixtures for refund tests: a captured payment made through the API."""

import itertools

import pytest

_keys = itertools.count(1)


@pytest.fixture
def captured_payment(storefront):
    """Create and capture a payment through the API; returns its JSON."""

    def make(amount: int = 10_000, currency: str = "usd", client=None):
        client = client or storefront
        body = {
            "amount": amount,
            "currency": currency,
            "customer_id": "cus_refund",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
        response = client.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"pay-{next(_keys)}")
        assert response.status_code == 201, response.json()
        return response.json()

    return make


@pytest.fixture
def refund(storefront):
    """POST a refund for a payment; returns the response."""

    def post(payment_id: str, client=None, key: str | None = None, **body):
        return (client or storefront).post(
            f"/api/v1/payments/{payment_id}/refunds/",
            body,
            format="json",
            HTTP_IDEMPOTENCY_KEY=key or f"re-{next(_keys)}",
        )

    return post
