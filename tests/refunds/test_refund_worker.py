"""Refund submission by a real Celery worker on the real Redis broker."""

import pytest

from gateways.simulator import SimulatorGateway
from payments.models import Payment
from refunds.models import Refund
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_retries(settings):
    settings.REFUNDS_RETRY_BASE_SECONDS = 0.05
    settings.REFUNDS_RETRY_MAX_SECONDS = 0.2


def _refund_when(public_id: str, **conditions):
    return Refund.objects.filter(public_id=public_id, **conditions).first()


def test_retryable_failures_are_retried_and_refund_once(captured_payment, refund, simulator, worker, fast_retries):
    payment = captured_payment(10_000)
    SimulatorGateway.inject_fault("create_refund", "unavailable", times=2)

    created = refund(payment["id"], amount=4000).json()
    done = wait_for(lambda: _refund_when(created["id"], status="succeeded"))

    assert done.attempts == 3
    assert done.gateway_reference.startswith("re_sim_")
    assert simulator.call_count("create_refund") == 3
    assert simulator.performed_count("create_refund") == 1
    paid = Payment.objects.get(public_id=payment["id"])
    assert (paid.amount_refunded, paid.status) == (4000, "partially_refunded")


def test_a_permanent_failure_fails_the_refund_and_frees_the_amount(
    captured_payment, refund, simulator, worker, fast_retries
):
    payment = captured_payment(10_000)
    SimulatorGateway.inject_fault("create_refund", "permanent")

    created = refund(payment["id"], amount=10_000).json()
    failed = wait_for(lambda: _refund_when(created["id"], status="failed"))
    again = refund(payment["id"], amount=10_000)
    succeeded = wait_for(lambda: _refund_when(again.json()["id"], status="succeeded"))

    assert failed.failure_reason == "The simulated gateway refused the request."
    assert again.status_code == 201
    assert succeeded.amount == 10_000
    assert Payment.objects.get(public_id=payment["id"]).status == "refunded"
    assert simulator.performed_count("create_refund") == 1


def test_exhausted_retries_leave_the_refund_pending_and_flagged(
    captured_payment, refund, simulator, worker, fast_retries, settings
):
    settings.REFUNDS_SUBMIT_MAX_RETRIES = 2
    payment = captured_payment(10_000)
    SimulatorGateway.inject_fault("create_refund", "unavailable", times=10)

    created = refund(payment["id"], amount=1000).json()
    flagged = wait_for(lambda: _refund_when(created["id"], needs_attention=True))

    assert flagged.status == "pending"
    assert flagged.attempts == 3
    assert "GatewayUnavailable" in flagged.last_error
    assert simulator.performed_count("create_refund") == 0
    assert Payment.objects.get(public_id=payment["id"]).amount_refunded == 0
