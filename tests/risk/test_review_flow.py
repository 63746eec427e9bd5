"""The manual review of a held payment: the storefront over HTTP, staff decisions through the review services."""

import pytest

from audit.models import StaffAction
from events.models import Event
from payments.errors import GatewayUnavailableError
from payments.models import Payment, PaymentStatusChange
from risk.errors import ReviewNotPending
from risk.models import RiskAssessment
from risk.services import review_approve, review_reject
from tests.risk.conftest import HELD

pytestmark = pytest.mark.django_db

REASONS = ["first_seen_large_amount"]
IN_REVIEW = {
    "error": {"type": "state_error", "code": "payment_in_review", "message": "The payment is held for manual review."}
}


@pytest.fixture
def held(create):
    """A payment the rules held, authorized at the gateway (capture forced to manual)."""
    response = create(**HELD, payment_method="pm_card_visa", confirm=True)
    assert response.status_code == 201
    return response.json()


def _payment(held) -> Payment:
    return Payment.objects.select_related("risk_assessment").get(public_id=held["id"])


def _feed(storefront, held) -> list[str]:
    return [e["type"] for e in storefront.get(f"/api/v1/payments/{held['id']}/events/").json()["results"]]


def _capture(storefront, held):
    return storefront.post(f"/api/v1/payments/{held['id']}/capture/", {}, format="json")


# --- held ------------------------------------------------------------------------------------------------
def test_a_held_payment_is_authorized_for_manual_capture_with_a_pending_review(held, storefront):
    assert held["status"] == "requires_capture"
    assert held["capture_method"] == "manual"
    assert held["amount_capturable"] == HELD["amount"]
    assert held["review"] == {"state": "pending", "reasons": REASONS}
    assert _feed(storefront, held) == ["payment.initiated", "payment.review_opened", "payment.authorized"]


def test_capture_while_the_review_is_pending_is_409_and_calls_nothing(held, storefront, simulator):
    events_before = Event.objects.count()

    response = _capture(storefront, held)

    assert response.status_code == 409
    assert response.json() == IN_REVIEW
    assert simulator.call_count("capture_intent") == 0
    assert _payment(held).status == "requires_capture"
    assert Event.objects.count() == events_before


# --- approve ---------------------------------------------------------------------------------------------
def test_an_approved_payment_can_be_captured(held, storefront, reviewer, simulator):
    approved = review_approve(payment_id=_payment(held).pk, actor=reviewer, reason="Known customer, called back")

    response = _capture(storefront, held)

    assert approved.status == "requires_capture"
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["amount_received"], body["amount_capturable"]) == ("succeeded", HELD["amount"], 0)
    assert body["review"] == {"state": "approved", "reasons": REASONS}
    assert simulator.call_count("capture_intent") == 1
    assert _feed(storefront, held) == [
        "payment.initiated",
        "payment.review_opened",
        "payment.authorized",
        "payment.review_closed",
        "payment.captured",
    ]


def test_approving_records_who_why_and_when(held, reviewer):
    review_approve(payment_id=_payment(held).pk, actor=reviewer, reason="Known customer", remote_addr="192.0.2.1")

    assessment = _payment(held).risk_assessment
    assert (assessment.payment.review_state, assessment.reviewed_by, assessment.review_note) == (
        "approved",
        reviewer,
        "Known customer",
    )
    assert assessment.reviewed_at is not None
    closed = Event.objects.get(subject_id=held["id"], type="payment.review_closed")
    assert closed.data["review"] == {"state": "approved", "reasons": REASONS}
    action = StaffAction.objects.get(action="review_approve")
    assert (action.actor, action.object_id, action.reason) == (reviewer, held["id"], "Known customer")
    assert action.before == {"review_state": "pending"}
    assert action.after == {"review_state": "approved", "capture": False}


def test_approving_with_capture_captures_at_once(held, reviewer, simulator):
    payment = review_approve(payment_id=_payment(held).pk, actor=reviewer, reason="Known customer", capture=True)

    assert payment.status == "succeeded"
    assert payment.amount_received == HELD["amount"]
    assert simulator.call_count("capture_intent") == 1


def test_an_approved_payment_not_yet_confirmed_is_captured_after_confirming(create, storefront, reviewer):
    created = create(**HELD, payment_method="pm_card_visa").json()
    review_approve(payment_id=Payment.objects.get(public_id=created["id"]).pk, actor=reviewer, reason="ok")

    confirmed = storefront.post(f"/api/v1/payments/{created['id']}/confirm/", {}, format="json")
    captured = _capture(storefront, created)

    assert confirmed.json()["status"] == "requires_capture"
    assert captured.status_code == 200
    assert captured.json()["status"] == "succeeded"


# --- reject ----------------------------------------------------------------------------------------------
def test_rejecting_cancels_the_payment_and_releases_the_authorization(held, storefront, reviewer, simulator):
    payment = review_reject(payment_id=_payment(held).pk, actor=reviewer, reason="Stolen card reported")

    assert payment.status == "canceled"
    assert payment.cancellation_reason == "fraudulent"
    assert payment.amount_capturable == 0
    assert simulator.call_count("cancel_intent") == 1
    assert simulator.call_count("capture_intent") == 0
    shown = storefront.get(f"/api/v1/payments/{held['id']}/").json()
    assert (shown["status"], shown["review"]) == ("canceled", {"state": "rejected", "reasons": REASONS})
    assert _feed(storefront, held)[-2:] == ["payment.review_closed", "payment.canceled"]
    assessment = _payment(held).risk_assessment
    assert (assessment.payment.review_state, assessment.reviewed_by, assessment.review_note) == (
        "rejected",
        reviewer,
        "Stolen card reported",
    )
    assert StaffAction.objects.filter(action="review_reject", object_id=held["id"]).count() == 1
    change = PaymentStatusChange.objects.get(payment=payment, to_status="canceled")
    assert change.source == "admin"


def test_a_rejected_payment_cannot_be_captured(held, storefront, reviewer, simulator):
    review_reject(payment_id=_payment(held).pk, actor=reviewer, reason="Stolen card reported")

    response = _capture(storefront, held)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_unexpected_state"
    assert simulator.call_count("capture_intent") == 0


def test_a_rejection_whose_cancel_did_not_reach_the_gateway_still_blocks_capture(held, storefront, reviewer, simulator):
    simulator.inject_fault("cancel_intent", "unavailable")
    with pytest.raises(GatewayUnavailableError):
        review_reject(payment_id=_payment(held).pk, actor=reviewer, reason="Stolen card reported")

    response = _capture(storefront, held)

    assert _payment(held).review_state == "rejected"
    assert _payment(held).status == "requires_capture"
    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "state_error",
        "code": "payment_unexpected_state",
        "message": "The payment was rejected in review and cannot be captured.",
    }
    assert simulator.call_count("capture_intent") == 0


# --- closing by the payment's own fate --------------------------------------------------------------------
def test_canceling_a_held_payment_closes_its_review(held, storefront, simulator):
    response = storefront.post(f"/api/v1/payments/{held['id']}/cancel/", {"reason": "abandoned"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["review"] == {"state": "rejected", "reasons": REASONS}
    assessment = _payment(held).risk_assessment
    assert (assessment.payment.review_state, assessment.reviewed_by) == ("rejected", None)
    assert assessment.review_note == "Payment canceled while held."
    assert simulator.call_count("cancel_intent") == 1
    assert _feed(storefront, held) == [
        "payment.initiated",
        "payment.review_opened",
        "payment.authorized",
        "payment.review_closed",
        "payment.canceled",
    ]


def test_a_held_payment_declined_at_confirm_closes_its_review(create, storefront):
    response = create(**HELD, payment_method="pm_card_chargeDeclined", confirm=True)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "card_declined"
    assessment = RiskAssessment.objects.get(payment__customer_id=HELD["customer_id"])
    assert (assessment.payment.review_state, assessment.review_note) == ("rejected", "Payment failed while held.")
    payment = assessment.payment
    assert _feed(storefront, {"id": payment.public_id}) == [
        "payment.initiated",
        "payment.review_opened",
        "payment.review_closed",
        "payment.failed",
    ]


# --- decisions that cannot be made ------------------------------------------------------------------------
@pytest.mark.parametrize("second", [review_approve, review_reject], ids=["approve", "reject"])
@pytest.mark.parametrize("first", [review_approve, review_reject], ids=["approved", "rejected"])
def test_a_decided_review_cannot_be_decided_again(held, reviewer, simulator, first, second):
    payment_id = _payment(held).pk
    first(payment_id=payment_id, actor=reviewer, reason="first")
    events, actions = Event.objects.count(), StaffAction.objects.count()
    calls = simulator.call_count("cancel_intent") + simulator.call_count("capture_intent")

    with pytest.raises(ReviewNotPending):
        second(payment_id=payment_id, actor=reviewer, reason="second")

    assert (Event.objects.count(), StaffAction.objects.count()) == (events, actions)
    assert simulator.call_count("cancel_intent") + simulator.call_count("capture_intent") == calls
    assert _payment(held).risk_assessment.review_note == "first"


@pytest.mark.parametrize("decide", [review_approve, review_reject], ids=["approve", "reject"])
def test_a_payment_that_was_never_held_has_no_review_to_decide(create, reviewer, decide):
    created = create(payment_method="pm_card_visa", capture_method="manual", confirm=True).json()
    payment = Payment.objects.get(public_id=created["id"])

    with pytest.raises(ReviewNotPending):
        decide(payment_id=payment.pk, actor=reviewer, reason="no")

    assert Payment.objects.get(pk=payment.pk).status == "requires_capture"
    assert not Event.objects.filter(subject_id=payment.public_id, type="payment.review_closed").exists()


@pytest.mark.parametrize("decide", [review_approve, review_reject], ids=["approve", "reject"])
def test_a_decision_needs_a_reason(held, reviewer, decide):
    with pytest.raises(ValueError, match="reason"):
        decide(payment_id=_payment(held).pk, actor=reviewer, reason="  ")

    assert _payment(held).review_state == "pending"
    assert not StaffAction.objects.exists()
