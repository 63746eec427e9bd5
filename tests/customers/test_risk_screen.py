"""A blocklisted card is never saved, and a saved card blocklisted later is never charged (#17 item 7)."""

from datetime import UTC, datetime, timedelta

import pytest

from customers.models import PaymentMethod
from payments.models import Payment
from risk.services import blocklist_add
from tests.accounts.factories import StaffUserFactory
from tests.conftest import new_key

pytestmark = pytest.mark.django_db


def _attach(client, customer_id: str, token: str):
    return client.post(
        f"/api/v1/customers/{customer_id}/payment_methods/",
        {"payment_method": token},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )


def _block_card(simulator, token: str) -> None:
    fingerprint = simulator.card_fingerprint(payment_method=token)
    assert fingerprint
    blocklist_add(kind="card_fingerprint", value=fingerprint, reason="stolen card", actor=StaffUserFactory())


def test_a_blocklisted_card_is_refused_at_attach_and_left_detached_at_the_gateway(storefront, simulator):
    _block_card(simulator, "pm_card_visa")

    response = _attach(storefront, "cus_risky", "pm_card_visa")

    assert response.status_code == 402, response.content
    assert (response.json()["error"]["type"], response.json()["error"]["code"]) == ("card_error", "blocked")
    assert not PaymentMethod.objects.exists()
    customer = storefront.get("/api/v1/customers/cus_risky/").json()
    attached = list(simulator.list_payment_methods(customer_reference=customer["gateway_reference"]))
    assert attached == []


def test_another_card_of_the_same_customer_is_still_saved(storefront, simulator):
    _block_card(simulator, "pm_card_visa")

    assert _attach(storefront, "cus_risky", "pm_card_mastercard").status_code == 201


def test_a_saved_card_blocklisted_later_is_blocked_when_charged_without_a_gateway_charge(storefront, simulator):
    saved = _attach(storefront, "cus_later", "pm_card_visa").json()
    _block_card(simulator, "pm_card_visa")
    now, day = datetime.now(UTC), timedelta(days=1)
    intents_before = len(list(simulator.list_intents(created_gte=now - day, created_lt=now + day)))

    response = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_later", "payment_method": saved["id"], "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )

    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "blocked"
    assert Payment.objects.get(customer_id="cus_later").status == "failed"
    assert len(list(simulator.list_intents(created_gte=now - day, created_lt=now + day))) == intents_before
