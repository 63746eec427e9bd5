"""The one status writer: the staff override ends a review hold and forgets a pending operation; errors are 409s;
flags finance sees are in the audit log."""

import pytest
from auditlog.models import LogEntry
from django.utils import timezone

from accounts.models import ApiRole
from config.api.errors import envelope_for_exception
from events.models import Event
from payments.models import Payment, PaymentStatusChange
from payments.services import payment_create, payment_mark_needs_attention, payment_override_status
from payments.states import InvalidTransition
from refunds.models import Refund
from refunds.services import refund_create, refund_mark_needs_attention
from risk.models import RiskAssessment
from tests.accounts.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

HELD_AMOUNT = 600_000  # usd 6,000.00: at the default review threshold (5,000.00), under the block one


def _held_payment(shop) -> Payment:
    payment = payment_create(
        client=shop,
        amount=HELD_AMOUNT,
        currency="usd",
        customer_id="cus_big_spender",
        payment_method="pm_card_visa",
        confirm=True,
    )
    assert (payment.status, payment.review_state) == ("requires_capture", "pending")
    return payment


def _event_types(payment: Payment) -> list[str]:
    return list(Event.objects.filter(subject_id=payment.public_id).order_by("sequence").values_list("type", flat=True))


@pytest.mark.parametrize(
    ("to_status", "review_after"),
    [("failed", "rejected"), ("canceled", "rejected"), ("succeeded", "approved")],
)
def test_override_of_a_held_payment_ends_its_review_and_forgets_its_pending_operation(to_status, review_after):
    # given a held payment with a capture recorded but never settled
    shop, staff = UserFactory(api_role=ApiRole.STOREFRONT), StaffUserFactory()
    payment = _held_payment(shop)
    payment.pending_operation, payment.pending_operation_at = "capture", timezone.now()
    payment.save(update_fields=["pending_operation", "pending_operation_at"])
    events_before = _event_types(payment)

    # when staff override its status (after a second person approved it)
    payment_override_status(payment_id=payment.pk, to_status=to_status, actor=staff, reason="Bank confirmed it")

    # then the status, the hold and the recorded operation all say what staff decided
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.review_state, stored.pending_operation, stored.pending_operation_at) == (
        to_status,
        review_after,
        "",
        None,
    )
    last = PaymentStatusChange.objects.filter(payment=payment).order_by("-id").first()
    assert (last.from_status, last.to_status, last.source, last.actor, last.reason) == (
        "requires_capture",
        to_status,
        "admin",
        staff,
        "Bank confirmed it",
    )
    assert _event_types(payment)[len(events_before) :] == ["payment.review_closed", "payment.status_overridden"]
    assessment = RiskAssessment.objects.get(payment=payment)
    assert (assessment.reviewed_by, assessment.review_note) == (None, "Status overridden by staff.")


def test_override_of_a_payment_without_a_hold_writes_no_review_event():
    # given
    shop, staff = UserFactory(api_role=ApiRole.STOREFRONT), StaffUserFactory()
    payment = payment_create(client=shop, amount=2000, currency="usd", customer_id="cus_1")
    events_before = _event_types(payment)

    # when
    payment_override_status(payment_id=payment.pk, to_status="failed", actor=staff, reason="Fraud ring")

    # then
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.review_state) == ("failed", "")
    assert _event_types(payment)[len(events_before) :] == ["payment.status_overridden"]


def test_an_invalid_transition_reaching_the_api_is_a_409_state_error():
    status, body, _headers = envelope_for_exception(InvalidTransition("canceled", "succeeded"))

    assert status == 409
    assert body == {
        "error": {
            "type": "state_error",
            "code": "payment_unexpected_state",
            "message": "A payment cannot go from canceled to succeeded.",
        }
    }


def test_a_payment_flagged_for_staff_is_in_the_audit_log():
    # given
    payment = payment_create(client=UserFactory(), amount=2000, currency="usd", customer_id="cus_1")

    # when the worker's retries run out
    payment_mark_needs_attention(payment_id=payment.pk, error="GatewayTimeout: no answer")

    # then the flag is set and django-auditlog recorded the change
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.needs_attention, stored.last_error) == (True, "GatewayTimeout: no answer")
    entry = LogEntry.objects.get_for_object(stored).order_by("-id").first()
    assert entry.changes_dict["needs_attention"] == ["False", "True"]


def test_a_refund_flagged_for_staff_is_in_the_audit_log():
    # given a pending refund (its submission is enqueued after a commit that never comes in this test)
    shop = UserFactory()
    payment = payment_create(
        client=shop, amount=5000, currency="usd", customer_id="cus_1", payment_method="pm_card_visa", confirm=True
    )
    refund = refund_create(payment_id=payment.pk, requested_by=shop, amount=1000)

    # when its retries run out
    refund_mark_needs_attention(refund_id=refund.pk, error="GatewayTimeout: no answer")

    # then
    stored = Refund.objects.get(pk=refund.pk)
    assert (stored.status, stored.needs_attention) == ("pending", True)
    entry = LogEntry.objects.get_for_object(stored).order_by("-id").first()
    assert entry.changes_dict["needs_attention"] == ["False", "True"]
