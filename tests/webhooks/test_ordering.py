"""Late, repeated and out-of-order events never move a payment backwards and never count money twice."""

import threading

import pytest

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from refunds.models import Refund
from refunds.services import refund_submit
from tests.conftest import client_for
from tests.helpers import run_in_threads
from tests.webhooks import payloads
from tests.webhooks.conftest import send
from webhooks.models import WebhookEvent


def _count(payment: Payment, event_type: str) -> int:
    return Event.objects.filter(subject_id=payment.public_id, type=event_type).count()


def _row(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_id=event["id"])


@pytest.mark.django_db
def test_late_payment_failed_after_succeeded_changes_nothing(payment_in, deliver):
    payment = payment_in("processing")
    reference = payment.gateway_reference
    succeeded = payloads.event(
        "payment_intent.succeeded", payloads.payment_intent(reference, status="succeeded", amount_received=2000)
    )
    failed = payloads.event(
        "payment_intent.payment_failed",
        payloads.payment_intent(reference, status="requires_payment_method", last_payment_error=payloads.card_error()),
    )

    deliver(succeeded)
    deliver(failed)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.failure_code) == ("succeeded", 2000, "")
    assert (_row(succeeded).status, _row(failed).status, _row(failed).ignored_reason) == (
        "processed",
        "ignored",
        "stale",
    )
    assert _count(payment, "payment.captured") == 1
    assert _count(payment, "payment.failed") == 0


@pytest.mark.django_db
def test_requires_action_after_requires_capture_is_stale(payment_in, deliver):
    payment = payment_in("requires_capture")
    event = payloads.event(
        "payment_intent.requires_action", payloads.payment_intent(payment.gateway_reference, status="requires_action")
    )

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_capturable) == ("requires_capture", 2000)
    assert (_row(event).status, _row(event).ignored_reason) == ("ignored", "stale")
    assert _count(payment, "payment.requires_action") == 0


@pytest.mark.django_db
def test_amount_capturable_updated_after_capture_changes_nothing(payment_in, storefront, deliver):
    payment = payment_in("requires_capture")
    captured = storefront.post(f"/api/v1/payments/{payment.public_id}/capture/", {"amount": 1500}, format="json")
    late = payloads.event(
        "payment_intent.amount_capturable_updated",
        payloads.payment_intent(
            payment.gateway_reference, status="requires_capture", capture_method="manual", amount_capturable=2000
        ),
    )

    deliver(late)

    assert captured.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == ("succeeded", 1500, 0)
    assert (_row(late).status, _row(late).ignored_reason) == ("ignored", "stale")
    assert _count(payment, "payment.captured") == 1
    assert _count(payment, "payment.authorized") == 1


@pytest.mark.django_db
def test_events_in_reverse_order_end_where_the_newest_says(payment_in, deliver):
    payment = payment_in("processing")
    reference = payment.gateway_reference
    newest_first = [
        payloads.event(
            "payment_intent.succeeded",
            payloads.payment_intent(reference, status="succeeded", capture_method="manual", amount_received=2000),
        ),
        payloads.event(
            "payment_intent.amount_capturable_updated",
            payloads.payment_intent(
                reference, status="requires_capture", capture_method="manual", amount_capturable=2000
            ),
        ),
        payloads.event("payment_intent.requires_action", payloads.payment_intent(reference, status="requires_action")),
    ]

    for event in newest_first:
        deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_received) == ("succeeded", 2000)
    assert [_row(event).status for event in newest_first] == ["processed", "ignored", "ignored"]
    history = list(payment.status_changes.order_by("id").values_list("to_status", flat=True))
    assert history == ["requires_confirmation", "processing", "succeeded"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("webhook_first", [True, False], ids=["webhook-applies-first", "api-applies-first"])
def test_api_capture_and_its_webhook_at_the_same_moment_count_the_capture_once(
    payment_in, storefront, tasks_inline, monkeypatch, webhook_first
):
    # given a payment awaiting capture, and Stripe's payment_intent.succeeded for the capture
    payment = payment_in("requires_capture")
    captures_before = SimulatorGateway.performed_count("capture_intent")
    event = payloads.event(
        "payment_intent.succeeded",
        payloads.payment_intent(
            payment.gateway_reference, status="succeeded", capture_method="manual", amount_received=1500
        ),
    )
    # The interleaving is forced, not hoped for: the API's capture call returns from the gateway and
    # then waits, holding no lock, until the webhook has been applied (webhook first); or the webhook
    # waits until the API has applied its own answer (API first).
    captured, webhook_done, api_done = threading.Event(), threading.Event(), threading.Event()
    real_capture = SimulatorGateway.capture_intent

    def capture_then_wait(self, **kwargs):
        result = real_capture(self, **kwargs)
        captured.set()
        if webhook_first:
            assert webhook_done.wait(10), "the webhook was never applied"
        return result

    monkeypatch.setattr(SimulatorGateway, "capture_intent", capture_then_wait)
    api = client_for(storefront.user)

    def capture():
        try:
            return api.post(f"/api/v1/payments/{payment.public_id}/capture/", {"amount": 1500}, format="json")
        finally:
            api_done.set()

    def webhook():
        assert captured.wait(10), "the capture never reached the gateway"
        if not webhook_first:
            assert api_done.wait(10), "the API never answered"
        try:
            return send(event)
        finally:
            webhook_done.set()

    # when both run at once
    api_response, webhook_response = run_in_threads([capture, webhook])

    # then the capture is counted once, whichever applied first
    assert api_response.status_code == 200, api_response.json()
    assert api_response.json()["amount_received"] == 1500
    assert webhook_response.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == ("succeeded", 1500, 0)
    assert payment.pending_operation == ""
    assert payment.status_changes.filter(to_status="succeeded").count() == 1
    assert _count(payment, "payment.captured") == 1
    assert _row(event).status == ("processed" if webhook_first else "ignored")
    assert SimulatorGateway.performed_count("capture_intent") == captures_before + 1


@pytest.mark.django_db
def test_charge_refunded_before_our_refund_call_returned_makes_one_refund(payment_in, storefront, simulator, deliver):
    payment = payment_in("succeeded", amount=10_000)
    response = storefront.post(
        f"/api/v1/payments/{payment.public_id}/refunds/", {"amount": 4000}, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
    )
    ours = Refund.objects.get(public_id=response.json()["id"])
    # The gateway makes the refund (same key as our submission), but our call has not returned yet.
    made = simulator.create_refund(
        intent_reference=payment.gateway_reference,
        amount=4000,
        reason="",
        metadata={"refund_id": ours.public_id, "payment_id": payment.public_id},
        idempotency_key=f"{ours.public_id}:create",
    )
    listed = payloads.refund(made.reference, intent=payment.gateway_reference, amount=4000, metadata=made.metadata)
    event = payloads.event(
        "charge.refunded",
        payloads.charge(intent=payment.gateway_reference, amount=10_000, amount_refunded=4000, refunds=[listed]),
    )

    deliver(event)
    returned = refund_submit(refund_id=ours.pk)  # our call comes back with the same refund

    payment.refresh_from_db()
    assert returned.status == "succeeded"
    assert list(Refund.objects.values_list("public_id", "gateway_reference", "status", "amount")) == [
        (ours.public_id, made.reference, "succeeded", 4000)
    ]
    assert (payment.status, payment.amount_refunded, payment.amount_received) == ("partially_refunded", 4000, 10_000)
    assert _count(payment, "refund.succeeded") == 1
    assert _count(payment, "payment.refunded") == 1
    assert simulator.performed_count("create_refund") == 1
    assert (_row(event).status, _row(event).refund) == ("processed", ours)


@pytest.mark.django_db
def test_refund_made_in_the_dashboard_is_recorded_once_however_it_is_reported(payment_in, storefront, deliver):
    payment = payment_in("succeeded", amount=10_000)
    reference = payment.gateway_reference
    dashboard_refund = payloads.refund("re_3PgafYLkdIwHu7ix9dsh", intent=reference, amount=3000)
    reports = [
        payloads.event(
            "charge.refunded",
            payloads.charge(intent=reference, amount=10_000, amount_refunded=3000, refunds=[dashboard_refund]),
        ),
        payloads.event("refund.updated", dashboard_refund),
        payloads.event("charge.refund.updated", dashboard_refund),
    ]

    for event in reports + reports:  # each event delivered twice, too
        deliver(event)

    refund = Refund.objects.get()
    assert (refund.gateway_reference, refund.status, refund.amount, refund.requested_by) == (
        "re_3PgafYLkdIwHu7ix9dsh",
        "succeeded",
        3000,
        None,
    )
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 3000)
    assert [_row(event).status for event in reports] == ["processed", "ignored", "ignored"]
    assert WebhookEvent.objects.count() == 3
    assert _count(payment, "refund.created") == 1
    assert _count(payment, "refund.succeeded") == 1
    assert _count(payment, "payment.refunded") == 1
    # It counts against what is left: 7000 remain, not 10000.
    too_much = storefront.post(
        f"/api/v1/payments/{payment.public_id}/refunds/", {"amount": 7001}, format="json", HTTP_IDEMPOTENCY_KEY="r-2"
    )
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    api_view = storefront.get(f"/api/v1/payments/{payment.public_id}/").json()
    assert api_view["amount_refunded"] == 3000


@pytest.mark.django_db
def test_charge_refunded_without_its_refunds_waits_for_the_refund_events(payment_in, deliver):
    payment = payment_in("succeeded", amount=10_000)
    event = payloads.event(
        "charge.refunded", payloads.charge(intent=payment.gateway_reference, amount=10_000, amount_refunded=3000)
    )

    deliver(event)

    payment.refresh_from_db()
    assert (_row(event).status, _row(event).ignored_reason) == ("ignored", "no_refund_details")
    assert (payment.status, payment.amount_refunded) == ("succeeded", 0)
    assert Refund.objects.count() == 0
