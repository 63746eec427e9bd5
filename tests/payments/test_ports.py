"""The risk port: payment_create calls the configured assessor explicitly, in order, and owns the hold it asks for."""

import pytest

from accounts.models import ApiRole, User
from events.models import Event
from gateways.base import Gateway
from payments.errors import PaymentBlocked
from payments.models import Payment
from payments.ports import AllowAll, Decision, RiskPreparation, RiskRequest, RiskVerdict, risk_assessor
from payments.rendering import render_payment
from payments.services import payment_cancel, payment_create
from risk.assessor import RulesAssessor
from risk.models import RiskAssessment
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


class RecordingAssessor:
    """A stand-in assessor (the port is ours): answers with `VERDICT` and records how the core called it."""

    VERDICT = RiskVerdict(decision=Decision.ALLOW)
    calls: list[tuple[str, object]] = []

    def prepare(
        self,
        *,
        gateway: Gateway,
        payment_method: str,
        currency: str,
        client: User | None = None,
        customer_id: str = "",
        email: str = "",
        ip: str | None = None,
    ) -> RiskPreparation:
        self.calls.append(("prepare", payment_method))
        return RiskPreparation(card_fingerprint="fp_1")

    def assess(self, request: RiskRequest) -> RiskVerdict:
        self.calls.append(("assess", (request.amount, request.currency, request.card_fingerprint)))
        return self.VERDICT

    def record(self, *, payment: Payment, verdict: RiskVerdict, card_fingerprint: str) -> None:
        stored = Payment.objects.filter(pk=payment.pk).exists()  # inserted before the assessor records it
        self.calls.append(("record", (stored, verdict.decision, card_fingerprint)))

    def hold_ended(self, *, payment: Payment, state: str, note: str) -> None:
        self.calls.append(("hold_ended", (state, note)))


@pytest.fixture
def recording(settings):
    settings.PAYMENTS_RISK_ASSESSOR = "tests.payments.test_ports.RecordingAssessor"
    RecordingAssessor.calls = []
    yield RecordingAssessor
    RecordingAssessor.VERDICT = RiskVerdict(decision=Decision.ALLOW)


def _types(payment: Payment) -> list[str]:
    return list(Event.objects.filter(subject_id=payment.public_id).order_by("sequence").values_list("type", flat=True))


def test_the_configured_assessor_is_the_risk_apps_rules_by_default():
    assert isinstance(risk_assessor(), RulesAssessor)


def test_with_allow_all_a_payment_has_no_risk_verdict_and_no_assessment(settings):
    # given the core without risk rules
    settings.PAYMENTS_RISK_ASSESSOR = "payments.ports.AllowAll"
    assert isinstance(risk_assessor(), AllowAll)

    # when
    payment = payment_create(client=UserFactory(), amount=2000, currency="usd", customer_id="cus_1")

    # then
    rendered = render_payment(payment)
    assert (rendered["risk"], rendered["review"]) == (None, None)
    assert not RiskAssessment.objects.filter(payment=payment).exists()


def test_the_core_calls_the_port_in_order_fingerprint_assess_then_record(recording):
    payment = payment_create(
        client=UserFactory(api_role=ApiRole.STOREFRONT),
        amount=2000,
        currency="usd",
        customer_id="cus_1",
        payment_method="pm_card_visa",
    )

    assert recording.calls == [
        ("prepare", "pm_card_visa"),
        ("assess", (2000, "usd", "fp_1")),
        ("record", (True, "allow", "fp_1")),
    ]
    assert payment.review_state == ""


def test_a_review_verdict_holds_the_payment_and_a_cancel_ends_the_hold(recording):
    # given an assessor asking for a review
    recording.VERDICT = RiskVerdict(decision=Decision.REVIEW, score=70, level="elevated", reasons=("manual_check",))

    # when the payment is created, then canceled
    payment = payment_create(client=UserFactory(), amount=2000, currency="usd", customer_id="cus_1")
    held = Payment.objects.get(pk=payment.pk)
    payment_cancel(payment=payment, reason="abandoned")

    # then it was held with manual capture, and the cancel closed the hold and told the assessor
    assert (held.capture_method, held.review_state, held.review_reasons) == ("manual", "pending", ["manual_check"])
    assert render_payment(held)["risk"] == {"score": 70, "level": "elevated"}
    assert Payment.objects.get(pk=payment.pk).review_state == "rejected"
    assert recording.calls[-1] == ("hold_ended", ("rejected", "Payment canceled while held."))
    assert _types(payment) == [
        "payment.initiated",
        "payment.review_opened",
        "payment.review_closed",
        "payment.canceled",
    ]


def test_a_block_verdict_fails_the_payment_without_a_gateway_call(recording, simulator):
    recording.VERDICT = RiskVerdict(decision=Decision.BLOCK, score=100, level="highest", reasons=("blocklist",))
    calls_before = simulator.call_count("create_intent")

    with pytest.raises(PaymentBlocked):
        payment_create(client=UserFactory(), amount=2000, currency="usd", customer_id="cus_1")

    payment = Payment.objects.get()
    assert (payment.status, payment.failure_code, payment.pending_operation) == ("failed", "blocked", "")
    assert simulator.call_count("create_intent") == calls_before
    assert _types(payment) == ["payment.initiated", "payment.failed"]
