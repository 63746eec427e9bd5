"""Two staff members deciding one review at once (PostgreSQL, real threads): the payment lock lets one decision win."""

import pytest

from audit.models import StaffAction
from events.models import Event
from payments.models import Payment
from risk.errors import ReviewNotPending
from risk.models import RiskAssessment
from risk.services import review_approve, review_reject
from tests.conftest import client_for
from tests.helpers import run_in_threads
from tests.risk.conftest import HELD, post_payment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("round_number", range(3))
def test_an_approval_and_a_rejection_at_once_make_exactly_one_decision(
    storefront, rules, reviewer, simulator, round_number
):
    created = post_payment(client_for(storefront.user), **HELD, payment_method="pm_card_visa", confirm=True).json()
    payment_id = Payment.objects.get(public_id=created["id"]).pk

    results = run_in_threads(
        [
            lambda: review_approve(payment_id=payment_id, actor=reviewer, reason="looks fine"),
            lambda: review_reject(payment_id=payment_id, actor=reviewer, reason="looks wrong"),
        ]
    )

    losers = [r for r in results if isinstance(r, Exception)]
    assert len(losers) == 1
    assert isinstance(losers[0], ReviewNotPending)
    assessment = RiskAssessment.objects.get(payment_id=payment_id)
    payment = Payment.objects.get(pk=payment_id)
    assert (
        Event.objects.filter(
            subject_id=Payment.objects.get(pk=payment_id).public_id, type="payment.review_closed"
        ).count()
        == 1
    )
    assert StaffAction.objects.filter(action__in=["review_approve", "review_reject"]).count() == 1
    if assessment.payment.review_state == "approved":
        assert (assessment.review_note, payment.status) == ("looks fine", "requires_capture")
        assert simulator.call_count("cancel_intent") == 0
    else:
        assert (assessment.payment.review_state, assessment.review_note, payment.status) == (
            "rejected",
            "looks wrong",
            "canceled",
        )
        assert simulator.call_count("cancel_intent") == 1


@pytest.mark.parametrize("round_number", range(3))
def test_an_approval_and_the_shops_cancel_at_once_close_the_review_once(
    storefront, rules, reviewer, simulator, round_number
):
    created = post_payment(client_for(storefront.user), **HELD, payment_method="pm_card_visa", confirm=True).json()
    payment_id = Payment.objects.get(public_id=created["id"]).pk
    shop = client_for(storefront.user)

    results = run_in_threads(
        [
            lambda: review_approve(payment_id=payment_id, actor=reviewer, reason="looks fine"),
            lambda: shop.post(f"/api/v1/payments/{created['id']}/cancel/", {}, format="json"),
        ]
    )

    approval, cancel = results
    assert cancel.status_code == 200
    assert Payment.objects.get(pk=payment_id).status == "canceled"
    assert simulator.call_count("cancel_intent") == 1
    assert (
        Event.objects.filter(
            subject_id=Payment.objects.get(pk=payment_id).public_id, type="payment.review_closed"
        ).count()
        == 1
    )
    assessment = RiskAssessment.objects.get(payment_id=payment_id)
    if isinstance(approval, Exception):  # the cancel closed the review first
        assert isinstance(approval, ReviewNotPending)
        assert (assessment.payment.review_state, assessment.review_note) == ("rejected", "Payment canceled while held.")
    else:
        assert (assessment.payment.review_state, assessment.review_note) == ("approved", "looks fine")
