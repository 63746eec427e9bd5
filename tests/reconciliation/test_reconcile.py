"""Reconciling with the simulator: each kind of difference is found once; --fix fixes only the safe ones."""

import time

import pytest
import redis
from django.conf import settings

from gateways.simulator.store import INTENT_INDEX, PREFIX
from payments.models import Payment, PaymentStatusChange
from payments.states import PaymentStatus as S
from reconciliation.models import Discrepancy, DiscrepancyState, ReconciliationRun, RunStatus
from reconciliation.services import reconcile
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def drift(shop, pay, simulator):
    """One payment per kind of difference, plus a clean one and one the gateway never heard of.

    Each drifted payment is made through the services, so the gateway holds its true record; then our row is
    altered behind the services' back with update(): that drift is what reconciling must find.
    """
    clean = pay()
    amount = pay()
    Payment.objects.filter(pk=amount.pk).update(amount=2500)
    currency = pay()
    Payment.objects.filter(pk=currency.pk).update(currency="eur")
    processing = pay()
    Payment.objects.filter(pk=processing.pk).update(status=S.PROCESSING, amount_received=0)
    canceled = pay()
    Payment.objects.filter(pk=canceled.pk).update(status=S.CANCELED)
    captured = pay()
    Payment.objects.filter(pk=captured.pk).update(amount_received=1500)
    refunded = pay()
    Payment.objects.filter(pk=refunded.pk).update(amount_refunded=500, status=S.PARTIALLY_REFUNDED)
    ghost = PaymentFactory(
        succeeded=True,
        client=shop,
        amount=700,
        customer_id="cus_recon",
        gateway_reference="pi_sim_unknown_to_the_gateway",
    )
    stranger = simulator.create_intent(
        amount=900,
        currency="usd",
        capture_method="automatic",
        payment_method="",
        metadata={},
        description="",
        idempotency_key="not-ours",
    )
    return {
        "clean": clean,
        "amount": amount,
        "currency": currency,
        "processing": processing,
        "canceled": canceled,
        "captured": captured,
        "refunded": refunded,
        "ghost": ghost,
        "stranger": stranger,
    }


def _found(run: ReconciliationRun) -> set[tuple[str, str, int | None, str]]:
    return {(d.kind, d.gateway_reference, d.payment_id, d.state) for d in run.discrepancies.all()}


def test_every_kind_of_difference_is_found_once(drift, window):
    # when
    run = reconcile(**window)

    # then
    d = drift
    assert _found(run) == {
        ("amount", d["amount"].gateway_reference, d["amount"].pk, "open"),
        ("currency", d["currency"].gateway_reference, d["currency"].pk, "open"),
        ("status", d["processing"].gateway_reference, d["processing"].pk, "open"),
        ("status", d["canceled"].gateway_reference, d["canceled"].pk, "open"),
        ("captured", d["captured"].gateway_reference, d["captured"].pk, "open"),
        ("refunded", d["refunded"].gateway_reference, d["refunded"].pk, "open"),
        ("missing_at_gateway", "pi_sim_unknown_to_the_gateway", d["ghost"].pk, "open"),
        ("missing_here", d["stranger"].reference, None, "open"),
    }
    assert run.discrepancies.count() == 8
    assert run.status == RunStatus.UNRESOLVED
    assert (run.gateway_records, run.our_records, run.matched) == (8, 8, 1)
    assert (run.discrepancies_found, run.discrepancies_fixed) == (8, 0)
    assert run.finished_at is not None
    assert run.duration_seconds is not None
    assert run.fix is False


def test_values_are_recorded_in_minor_units(drift, window):
    run = reconcile(**window)

    amount = run.discrepancies.get(kind="amount")
    refunded = run.discrepancies.get(kind="refunded")
    missing_here = run.discrepancies.get(kind="missing_here")
    assert (amount.ours, amount.theirs) == ({"amount": 2500, "currency": "usd"}, {"amount": 2000, "currency": "usd"})
    assert (refunded.ours, refunded.theirs) == (
        {"amount_refunded": 500, "currency": "usd"},
        {"amount_refunded": 0, "currency": "usd"},
    )
    assert missing_here.theirs == {
        "amount": 900,
        "currency": "usd",
        "status": "requires_payment_method",
        "amount_received": 0,
    }


def test_without_fix_nothing_is_changed(drift, window):
    history_before = PaymentStatusChange.objects.count()

    reconcile(**window)

    assert Payment.objects.get(pk=drift["processing"].pk).status == S.PROCESSING
    assert PaymentStatusChange.objects.count() == history_before


def test_fix_moves_a_waiting_payment_forward_through_the_service_and_leaves_the_rest_open(drift, window):
    # when
    run = reconcile(**window, fix=True)

    # then: the payment we showed processing is succeeded, with its history row written by the service
    payment = Payment.objects.get(pk=drift["processing"].pk)
    assert (payment.status, payment.amount_received) == (S.SUCCEEDED, 2000)
    change = PaymentStatusChange.objects.filter(payment=payment).latest("id")
    assert (change.from_status, change.to_status, change.source) == ("processing", "succeeded", "worker")
    assert run.discrepancies.get(payment=payment).state == DiscrepancyState.FIXED
    # and: a payment we show canceled while the gateway took the money is not "fixed" backwards
    assert Payment.objects.get(pk=drift["canceled"].pk).status == S.CANCELED
    assert run.discrepancies.filter(state=DiscrepancyState.OPEN).count() == 7
    assert (run.discrepancies_found, run.discrepancies_fixed, run.status) == (8, 1, RunStatus.UNRESOLVED)
    assert run.fix is True


def test_fix_captures_what_the_gateway_captured_for_a_payment_waiting_for_capture(pay, simulator, window):
    # given: authorized here, captured at the gateway (e.g. from the Stripe dashboard)
    payment = pay(capture_method="manual")
    simulator.capture_intent(reference=payment.gateway_reference, amount=1500, idempotency_key="dashboard")

    # when
    run = reconcile(**window, fix=True)

    # then
    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == (S.SUCCEEDED, 1500, 0)
    assert [(d.kind, d.state) for d in run.discrepancies.all()] == [("status", "fixed")]
    assert run.status == RunStatus.CLEAN


def test_a_run_without_differences_is_clean(pay, window, tasks_inline, django_capture_on_commit_callbacks):
    # given: payments in several states, one refunded through our refund flow
    pay()
    pay(capture_method="manual")
    pay(amount=500, currency="jpy")
    declined = pay(payment_method="pm_card_chargeDeclined", confirm=False)
    from payments.errors import CardDeclined
    from payments.services import payment_confirm

    with pytest.raises(CardDeclined):
        payment_confirm(payment=declined)

    # when
    run = reconcile(**window)

    # then
    assert run.status == RunStatus.CLEAN
    assert (run.gateway_records, run.our_records, run.matched, run.discrepancies_found) == (4, 4, 4, 0)
    assert Discrepancy.objects.count() == 0


def test_refunds_at_the_gateway_are_compared_with_ours(pay, simulator, window):
    # given: a refund made at the gateway that we never heard of
    payment = pay()
    simulator.create_refund(
        intent_reference=payment.gateway_reference, amount=300, reason="", metadata={}, idempotency_key="dash-refund"
    )

    # when
    run = reconcile(**window)

    # then
    refunded = run.discrepancies.get()
    assert (refunded.kind, refunded.payment_id) == ("refunded", payment.pk)
    assert refunded.theirs == {"amount_refunded": 300, "currency": "usd"}


def test_records_outside_the_window_are_not_compared(pay, window):
    pay()
    since = window["until"]

    run = reconcile(since=since, until=since + (window["until"] - window["since"]))

    assert (run.gateway_records, run.our_records, run.status) == (0, 0, RunStatus.CLEAN)


def test_a_gateway_that_cannot_be_listed_fails_the_run(pay, window, simulator):
    pay()
    # an index entry whose intent is gone (the simulator's index by created time, in the cache's Redis)
    index = redis.Redis.from_url(settings.REDIS_URL)
    index.zadd(PREFIX + INTENT_INDEX, {"pi_sim_gone": int(time.time() * 1_000_000)})
    index.close()

    from gateways.base import Permanent

    with pytest.raises(Permanent):
        reconcile(**window)

    run = ReconciliationRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Permanent: No such payment_intent")
    assert run.finished_at is not None
