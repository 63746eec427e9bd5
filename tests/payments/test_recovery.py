"""The sweeper finishes stuck operations with the same gateway keys: exactly one charge, one refund."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from config.celery import app as celery_app
from gateways.base import GatewayTimeout
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.services import payments_sweep_stuck
from refunds.models import Refund
from refunds.services import refund_submit, refunds_sweep_stuck
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db
BODY = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa"}


def _later(minutes: int = 10):
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes))


@pytest.mark.usefixtures("tasks_inline")
def test_a_payment_left_processing_is_settled_with_exactly_one_charge(storefront, simulator):
    payment = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").json()
    SimulatorGateway.inject_fault("confirm_intent", "timeout")  # charged, but the answer is lost
    storefront.post(f"/api/v1/payments/{payment['id']}/confirm/", {}, format="json")
    assert Payment.objects.get(public_id=payment["id"]).status == "processing"

    with _later():
        swept = payments_sweep_stuck()

    settled = Payment.objects.get(public_id=payment["id"])
    assert swept == [settled.pk]
    assert settled.status == "succeeded"
    assert settled.pending_operation == ""
    assert simulator.calls_for_key(f"{payment['id']}:confirm") == 2
    assert simulator.performed_count("confirm_intent") == 1


def test_the_sweeper_leaves_recent_operations_alone(storefront):
    payment = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").json()
    SimulatorGateway.inject_fault("confirm_intent", "timeout")
    storefront.post(f"/api/v1/payments/{payment['id']}/confirm/", {}, format="json")

    swept = payments_sweep_stuck()

    assert swept == []
    assert Payment.objects.get(public_id=payment["id"]).status == "processing"


@pytest.mark.usefixtures("tasks_inline")
def test_a_refund_whose_answer_was_lost_is_resubmitted_and_refunds_once(storefront, simulator):
    payment = storefront.post(
        "/api/v1/payments/", {**BODY, "confirm": True}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    ).json()
    refund = storefront.post(
        f"/api/v1/payments/{payment['id']}/refunds/", {"amount": 700}, format="json", HTTP_IDEMPOTENCY_KEY="r"
    ).json()
    SimulatorGateway.inject_fault("create_refund", "timeout")
    with pytest.raises(GatewayTimeout):
        refund_submit(refund_id=Refund.objects.get().pk)  # refunded at the gateway, the answer lost
    assert Refund.objects.get().status == "pending"

    with _later():
        refunds_sweep_stuck()

    done = Refund.objects.get(public_id=refund["id"])
    assert done.status == "succeeded"
    assert simulator.performed_count("create_refund") == 1
    assert simulator.calls_for_key(f"{refund['id']}:create") == 2
    assert Payment.objects.get(public_id=payment["id"]).amount_refunded == 700


@pytest.mark.django_db(transaction=True)
def test_settling_that_runs_out_of_retries_flags_the_payment(storefront, simulator, settings, worker):
    settings.PAYMENTS_SETTLE_MAX_RETRIES = 2
    settings.PAYMENTS_RETRY_BASE_SECONDS = 0.05
    settings.PAYMENTS_RETRY_MAX_SECONDS = 0.1
    payment = storefront.post("/api/v1/payments/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").json()
    SimulatorGateway.inject_fault("confirm_intent", "unavailable", times=10)
    storefront.post(f"/api/v1/payments/{payment['id']}/confirm/", {}, format="json")

    flagged = wait_for(lambda: Payment.objects.filter(public_id=payment["id"], needs_attention=True).first())
    with _later():
        again = payments_sweep_stuck()

    assert flagged.needs_attention is True
    assert "GatewayUnavailable" in flagged.last_error
    assert flagged.status == "processing"
    assert flagged.pending_operation == "confirm"
    assert again == []  # flagged payments wait for staff
    assert simulator.performed_count("confirm_intent") == 0


def test_every_periodic_task_is_scheduled_and_registered():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled == {
        "events.tasks.relay_outbox",
        "payments.tasks.sweep_stuck_payments",
        "payments.tasks.purge_idempotency_keys",
        "accounts.tasks.purge_expired_tokens",
        "risk.tasks.sweep_reviews",
        "refunds.tasks.sweep_stuck_refunds",
        "webhooks.tasks.recover_missed_events",
        "webhooks.tasks.deliver_simulator_events",
        "disputes.tasks.warn_dispute_deadlines",
        "reconciliation.tasks.reconcile_daily",
        "privacy.tasks.purge_webhook_payloads",
    }
    celery_app.loader.import_default_modules()
    assert scheduled <= set(celery_app.tasks)
