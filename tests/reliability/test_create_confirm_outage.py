"""A `confirm: true` create whose gateway call fails: 502 now, and the worker finishes create *and* confirm.

The intended sequence is recorded as one operation (`create_confirm`, one gateway call with one key), so the
settle task repeats that call rather than a bare create: the payment ends `succeeded`, charged once.
"""

import pytest

from gateways.simulator import SimulatorGateway
from payments.models import Payment
from tests.helpers import wait_for

BODY = {"amount": 2000, "currency": "usd", "customer_id": "cus_cc", "payment_method": "pm_card_visa", "confirm": True}


@pytest.mark.django_db(transaction=True)
def test_a_failed_create_and_confirm_is_finished_by_the_worker_with_one_charge(storefront, simulator, worker):
    SimulatorGateway.inject_fault("create_intent", "unavailable")

    response = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="cc-outage")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "gateway_unavailable"
    payment = Payment.objects.get(client=storefront.user)  # kept, its operation recorded, not lost with the 502

    settled = wait_for(lambda: Payment.objects.filter(pk=payment.pk, status="succeeded").first(), timeout=30)

    assert settled.amount_received == 2000
    assert settled.pending_operation == ""
    assert settled.gateway_reference.startswith("pi_sim_")
    assert simulator.call_count("create_intent") == 2  # the failed call, then the worker's, with the same key
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("confirm_intent") == 0  # create and confirm in that one call
