"""Every handled type moves the right object the right way, through the services; the rest is ignored."""

import pytest

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from refunds.models import Refund
from tests.webhooks import payloads
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _types(payment: Payment) -> list[str]:
    return list(Event.objects.filter(subject_id=payment.public_id).order_by("sequence").values_list("type", flat=True))


def _history(payment: Payment) -> list[tuple[str, str, str]]:
    return list(payment.status_changes.order_by("id").values_list("from_status", "to_status", "source"))


def _row(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_id=event["id"])


def test_payment_intent_succeeded_finishes_a_confirm_whose_answer_was_lost(payment_in, deliver):
    payment = payment_in("processing")
    intent = payloads.payment_intent(payment.gateway_reference, status="succeeded", amount_received=2000)
    event = payloads.event("payment_intent.succeeded", intent)

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == ("succeeded", 2000, 0)
    assert _history(payment)[-1] == ("processing", "succeeded", "webhook")
    assert _types(payment)[-1] == "payment.captured"
    row = _row(event)
    assert (row.status, row.ignored_reason, row.payment, row.attempts, row.last_error) == (
        "processed",
        "",
        payment,
        1,
        "",
    )
    assert row.processed_at is not None


def test_payment_intent_payment_failed_fails_the_payment_with_the_decline_code(payment_in, deliver):
    payment = payment_in("requires_confirmation")
    intent = payloads.payment_intent(
        payment.gateway_reference, status="requires_payment_method", last_payment_error=payloads.card_error()
    )
    event = payloads.event("payment_intent.payment_failed", intent)

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "insufficient_funds")
    assert payment.failure_message == "Your card has insufficient funds."
    assert _history(payment)[-1] == ("requires_confirmation", "failed", "webhook")
    assert _types(payment)[-1] == "payment.failed"
    assert _row(event).status == "processed"


def test_payment_intent_canceled_cancels_an_authorization(payment_in, deliver):
    payment = payment_in("requires_capture")
    intent = payloads.payment_intent(payment.gateway_reference, status="canceled", capture_method="manual")
    event = payloads.event("payment_intent.canceled", intent)

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_capturable, payment.amount_received) == ("canceled", 0, 0)
    assert _types(payment)[-1] == "payment.canceled"
    assert _row(event).status == "processed"


def test_payment_intent_amount_capturable_updated_authorizes_a_processing_payment(payment_in, deliver):
    payment = payment_in("processing")
    intent = payloads.payment_intent(
        payment.gateway_reference, status="requires_capture", capture_method="manual", amount_capturable=2000
    )
    event = payloads.event("payment_intent.amount_capturable_updated", intent)

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_capturable) == ("requires_capture", 2000)
    assert _types(payment)[-1] == "payment.authorized"
    assert _row(event).status == "processed"


def test_payment_intent_requires_action_asks_for_authentication(payment_in, deliver):
    payment = payment_in("processing")
    intent = payloads.payment_intent(payment.gateway_reference, status="requires_action")
    event = payloads.event("payment_intent.requires_action", intent)

    deliver(event)

    payment.refresh_from_db()
    assert payment.status == "requires_action"
    assert _types(payment)[-1] == "payment.requires_action"
    assert _row(event).status == "processed"


def test_payment_is_matched_by_our_id_in_metadata_when_its_intent_id_was_never_stored(storefront, deliver):
    SimulatorGateway.inject_fault("create_intent", "timeout")  # Stripe made the intent; we never learned its id
    created = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="meta-1",
    )
    payment = Payment.objects.get()
    intent = payloads.payment_intent("pi_neverstored", status="canceled", metadata={"payment_id": payment.public_id})
    event = payloads.event("payment_intent.canceled", intent)

    deliver(event)

    assert created.status_code == 502
    payment.refresh_from_db()
    assert payment.gateway_reference is None
    assert payment.status == "canceled"
    assert _row(event).payment == payment


def test_charge_captured_counts_the_captured_amount(payment_in, deliver):
    payment = payment_in("requires_capture")
    charge = payloads.charge(intent=payment.gateway_reference, amount=2000, amount_captured=1500)
    event = payloads.event("charge.captured", charge)

    deliver(event)

    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == ("succeeded", 1500, 0)
    assert _types(payment).count("payment.captured") == 1
    assert _row(event).status == "processed"


def _pending_refund(storefront, payment: Payment, amount: int) -> Refund:
    response = storefront.post(
        f"/api/v1/payments/{payment.public_id}/refunds/", {"amount": amount}, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
    )
    assert response.status_code == 201, response.json()
    return Refund.objects.get(public_id=response.json()["id"])


def test_refund_updated_settles_our_pending_refund(payment_in, storefront, deliver):
    payment = payment_in("succeeded", amount=10_000)
    ours = _pending_refund(storefront, payment, 2500)
    refund = payloads.refund(
        "re_3PgafYLkdIwHu7ix1abc",
        intent=payment.gateway_reference,
        amount=2500,
        metadata={"refund_id": ours.public_id, "payment_id": payment.public_id},
    )
    event = payloads.event("refund.updated", refund, previous_attributes={"status": "pending"})

    deliver(event)

    ours.refresh_from_db()
    payment.refresh_from_db()
    assert (ours.status, ours.gateway_reference) == ("succeeded", "re_3PgafYLkdIwHu7ix1abc")
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 2500)
    assert _types(payment)[-2:] == ["refund.succeeded", "payment.refunded"]
    row = _row(event)
    assert (row.status, row.payment, row.refund) == ("processed", payment, ours)


def test_charge_refund_updated_fails_our_pending_refund(payment_in, storefront, deliver):
    payment = payment_in("succeeded", amount=10_000)
    ours = _pending_refund(storefront, payment, 2500)
    refund = payloads.refund(
        "re_3PgafYLkdIwHu7ix2abc",
        intent=payment.gateway_reference,
        amount=2500,
        status="failed",
        failure_reason="expired_or_canceled_card",
        metadata={"refund_id": ours.public_id},
    )
    event = payloads.event("charge.refund.updated", refund)

    deliver(event)

    ours.refresh_from_db()
    payment.refresh_from_db()
    assert (ours.status, ours.failure_reason) == ("failed", "expired_or_canceled_card")
    assert (payment.status, payment.amount_refunded) == ("succeeded", 0)
    assert _types(payment)[-1] == "refund.failed"
    assert _row(event).status == "processed"


def test_charge_dispute_created_flags_the_payment_once_with_an_event(payment_in, deliver):
    payment = payment_in("succeeded")
    dispute = payloads.dispute(intent=payment.gateway_reference, amount=2000, reason="fraudulent")
    first = payloads.event("charge.dispute.created", dispute)
    again = payloads.event("charge.dispute.created", dispute)  # the same dispute, reported by another event

    deliver(first)
    deliver(again)

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert (payment.dispute_reference, payment.dispute_reason) == (dispute["id"], "fraudulent")
    assert payment.disputed_at is not None
    opened = Event.objects.filter(subject_id=payment.public_id, type="payment.dispute_opened")
    assert opened.count() == 1
    assert opened.get().data["dispute"] == {
        "id": dispute["id"],
        "reason": "fraudulent",
        "amount": 2000,
        "currency": "usd",
    }
    assert (_row(first).status, _row(again).status, _row(again).ignored_reason) == ("processed", "ignored", "stale")


def test_unknown_type_is_stored_and_ignored(payment_in, deliver):
    payment = payment_in("succeeded")
    before = _types(payment)
    event = payloads.event("customer.created", {"id": "cus_1", "object": "customer", "email": "a@example.com"})

    response = deliver(event)

    assert response.json() == {"received": True}
    row = _row(event)
    assert (row.status, row.ignored_reason, row.payment, row.attempts) == ("ignored", "unknown_type", None, 1)
    assert _types(payment) == before


def test_event_for_an_intent_we_do_not_know_is_ignored(deliver):
    intent = payloads.payment_intent("pi_notours", status="succeeded", amount_received=2000)
    event = payloads.event("payment_intent.succeeded", intent)

    deliver(event)

    row = _row(event)
    assert (row.status, row.ignored_reason, row.payment) == ("ignored", "unknown_object", None)
    assert Event.objects.count() == 0
