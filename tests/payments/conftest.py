"""Fixtures for payment tests: API helpers on top of the shared clients."""

import itertools

import pytest

_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys)}"


@pytest.fixture
def create_payment(storefront):
    """POST /api/v1/payments/ with a fresh Idempotency-Key; returns the response."""

    def create(client=None, *, key: str | None = None, **overrides):
        body = {"amount": 2000, "currency": "usd", "customer_id": "cus_42", **overrides}
        return (client or storefront).post(
            "/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key or new_key()
        )

    return create
