"""A gateway that does not answer: 502 now, the payment stays processing, a real worker settles it."""

import pytest

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from tests.helpers import wait_for

BODY = {"amount": 2000, "currency": "usd", "customer_id": "cus_1", "payment_method": "pm_card_visa"}


def _create(client, **extra):
    return client.post("/api/v1/payments/", {**BODY, **extra}, format="json", HTTP_IDEMPOTENCY_KEY="k-1").json()


@pytest.mark.django_db
def test_confirm_timeout_answers_502_and_leaves_the_payment_processing(storefront, simulator):
    payment = _create(storefront)
    SimulatorGateway.inject_fault("confirm_intent", "timeout")

    response = storefront.post(f"/api/v1/payments/{payment['id']}/confirm/", {}, format="json")

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "gateway_error"
    assert response.json()["error"]["code"] == "gateway_timeout"
    stored = Payment.objects.get(public_id=payment["id"])
    assert stored.status == "processing"
    assert stored.pending_operation == "confirm"
    assert Event.objects.filter(subject_id=stored.public_id).last().type == "payment.processing"
    assert storefront.get(f"/api/v1/payments/{payment['id']}/").json()["status"] == "processing"


@pytest.mark.django_db(transaction=True)
def test_worker_settles_a_timed_out_confirm_with_the_same_key_and_charges_once(storefront, simulator, worker):
    payment = _create(storefront)
    SimulatorGateway.inject_fault("confirm_intent", "timeout")

    response = storefront.post(f"/api/v1/payments/{payment['id']}/confirm/", {}, format="json")
    settled = wait_for(lambda: Payment.objects.filter(public_id=payment["id"], status="succeeded").first())

    assert response.status_code == 502
    assert settled.amount_received == 2000
    assert settled.pending_operation == ""
    assert simulator.performed_count("confirm_intent") == 1
    assert simulator.call_count("confirm_intent") == 2
    history = list(settled.status_changes.order_by("id").values_list("to_status", "source"))
    assert history == [("requires_confirmation", "api"), ("processing", "api"), ("succeeded", "worker")]


@pytest.mark.django_db(transaction=True)
def test_worker_retries_an_outage_until_the_gateway_answers(storefront, simulator, worker):
    payment = _create(storefront, capture_method="manual", confirm=True)
    SimulatorGateway.inject_fault("capture_intent", "unavailable", times=2)

    response = storefront.post(f"/api/v1/payments/{payment['id']}/capture/", {"amount": 1500}, format="json")
    settled = wait_for(lambda: Payment.objects.filter(public_id=payment["id"], status="succeeded").first(), timeout=30)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "gateway_unavailable"
    assert settled.amount_received == 1500
    assert simulator.performed_count("capture_intent") == 1
    assert simulator.call_count("capture_intent") == 3


@pytest.mark.django_db
def test_create_timeout_is_finished_by_a_retry_with_the_same_key(storefront, simulator):
    SimulatorGateway.inject_fault("create_intent", "timeout_before")

    first = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-create")
    retry = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-create")

    assert first.status_code == 502
    assert retry.status_code == 201
    assert retry.json()["gateway_reference"].startswith("pi_sim_")
    assert Payment.objects.count() == 1
    assert simulator.performed_count("create_intent") == 1
