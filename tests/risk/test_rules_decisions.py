"""What each decision does to a payment over HTTP: the 402 of a block, the stored assessment, the API's fields."""

import pytest

from events.models import Event
from payments.models import Payment, PaymentStatusChange
from risk.models import RiskAssessment, RiskSettings
from risk.services import risk_settings_changed
from tests.risk.conftest import HELD, assessment_of, event_types, payment_of

pytestmark = pytest.mark.django_db

BLOCKED_BODY = {
    "error": {"type": "card_error", "code": "blocked", "message": "The payment was blocked by our risk rules."}
}


@pytest.fixture
def blocklisted(block):
    block("email", "fraud@example.com")
    return {"customer_email": "fraud@example.com", "payment_method": "pm_card_visa", "confirm": True}


# --- block -------------------------------------------------------------------------------------------------
def test_a_blocked_create_is_402_blocked_in_the_error_envelope(create, blocklisted):
    response = create(**blocklisted)

    assert response.status_code == 402
    assert response.json() == BLOCKED_BODY


def test_a_blocked_payment_is_failed_blocked_without_a_gateway_call(create, blocklisted, simulator):
    response = create(**blocklisted)

    payment = payment_of(response)
    assert payment.status == "failed"
    assert payment.failure_code == "blocked"
    assert payment.failure_message == "The payment was blocked by our risk rules."
    assert payment.gateway_reference in (None, "")
    assert payment.pending_operation == ""
    assert payment.amount_capturable == payment.amount_received == 0
    for operation in ("create_intent", "confirm_intent", "capture_intent", "cancel_intent"):
        assert simulator.call_count(operation) == 0, operation


def test_a_blocked_payment_writes_initiated_then_failed(create, blocklisted):
    response = create(**blocklisted)

    payment = payment_of(response)
    assert event_types(payment.public_id) == ["payment.initiated", "payment.failed"]
    failed = Event.objects.get(subject_id=payment.public_id, type="payment.failed")
    assert failed.data["status"] == "failed"
    assert failed.data["failure_code"] == "blocked"
    assert failed.data["risk"] == {"score": 100, "level": "highest"}
    assert failed.data["review"] is None
    history = PaymentStatusChange.objects.filter(payment=payment).order_by("id")
    assert [(h.from_status, h.to_status, h.reason) for h in history] == [
        ("", "requires_confirmation", ""),
        ("requires_confirmation", "failed", "blocked by risk rules"),
    ]


def test_a_blocked_create_replayed_with_its_key_gives_the_same_402_and_does_nothing(create, blocklisted, simulator):
    first = create(key="block-once", **blocklisted)
    events_before = Event.objects.count()

    again = create(key="block-once", **blocklisted)

    assert again.status_code == 402
    assert again.json() == first.json() == BLOCKED_BODY
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1
    assert RiskAssessment.objects.count() == 1
    assert Event.objects.count() == events_before
    assert simulator.call_count("create_intent") == 0


def test_a_blocked_payment_reads_back_failed_with_its_risk(create, blocklisted, storefront):
    payment = payment_of(create(**blocklisted))

    shown = storefront.get(f"/api/v1/payments/{payment.public_id}/").json()
    listed = storefront.get("/api/v1/payments/").json()["results"]

    assert (shown["status"], shown["failure_code"]) == ("failed", "blocked")
    assert shown["risk"] == {"score": 100, "level": "highest"}
    assert shown["review"] is None
    assert [(p["id"], p["risk"], p["review"]) for p in listed] == [
        (payment.public_id, {"score": 100, "level": "highest"}, None)
    ]


def test_blocking_one_payment_leaves_the_next_customer_alone(create, blocklisted):
    create(**blocklisted)

    response = create(
        customer_id="cus_2", customer_email="ann@example.com", payment_method="pm_card_visa", confirm=True
    )

    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"


# --- the stored assessment ---------------------------------------------------------------------------------
def test_an_allowed_payment_stores_its_assessment(create):
    response = create()

    assessment = assessment_of(response)
    assert assessment.score == 0
    assert assessment.level == "normal"
    assert assessment.decision == "allow"
    assert assessment.reasons == []
    assert assessment.payment.review_state == ""
    assert assessment.settings_version == RiskSettings.objects.get(pk=1).version


def test_a_held_payment_stores_its_reasons_and_a_pending_review(create, threshold):
    threshold("usd", review_amount=500_000, block_amount=5_000_000, first_seen_amount=100_000)

    response = create(amount=100_000, customer_id="cus_new")

    assessment = assessment_of(response)
    assert (assessment.score, assessment.level, assessment.decision) == (50, "elevated", "review")
    assert assessment.reasons == [
        {
            "rule": "first_seen",
            "code": "first_seen_large_amount",
            "points": 50,
            "message": "first payment of this customer, $1,000.00 (≥ $1,000.00)",
        }
    ]
    assert assessment.payment.review_state == "pending"
    assert assessment.reviewed_by is None
    assert assessment.reminded_at is None


def test_the_settings_version_recorded_changes_after_a_settings_change(create, rules, reviewer):
    before = assessment_of(create()).settings_version
    rules(velocity_points=70)

    version = risk_settings_changed(
        actor=reviewer, what="rules", before={"velocity_points": 60}, after={"velocity_points": 70}
    )
    after = assessment_of(create()).settings_version

    assert version == before + 1
    assert after == version
    assert RiskAssessment.objects.filter(settings_version=before).count() == 1


def test_every_create_gets_exactly_one_assessment(create):
    create()
    create(**HELD)

    assert RiskAssessment.objects.count() == Payment.objects.count() == 2


# --- the API's risk and review fields ----------------------------------------------------------------------
def test_an_allowed_payment_shows_normal_risk_and_no_review(create, storefront):
    created = create(payment_method="pm_card_visa", confirm=True).json()

    shown = storefront.get(f"/api/v1/payments/{created['id']}/").json()

    assert created["risk"] == shown["risk"] == {"score": 0, "level": "normal"}
    assert created["review"] is shown["review"] is None
    assert created["capture_method"] == "automatic"
    assert created["status"] == "succeeded"


def test_a_held_payment_shows_elevated_risk_and_the_pending_review_everywhere(create, storefront, finance):
    created = create(**HELD, payment_method="pm_card_visa", confirm=True).json()
    expected_review = {"state": "pending", "reasons": ["first_seen_large_amount"]}

    shown = storefront.get(f"/api/v1/payments/{created['id']}/").json()
    listed = storefront.get("/api/v1/payments/?customer_id=cus_new").json()["results"]
    finance_view = finance.get(f"/api/v1/payments/{created['id']}/").json()

    for body in (created, shown, listed[0], finance_view):
        assert body["risk"] == {"score": 50, "level": "elevated"}
        assert body["review"] == expected_review
        assert body["capture_method"] == "manual"
        assert body["status"] == "requires_capture"
    assert len(listed) == 1


def test_a_held_payment_writes_review_opened_after_initiated(create):
    created = create(**HELD, payment_method="pm_card_visa", confirm=True).json()

    assert event_types(created["id"]) == ["payment.initiated", "payment.review_opened", "payment.authorized"]
    opened = Event.objects.get(subject_id=created["id"], type="payment.review_opened")
    assert opened.data["review"] == {"state": "pending", "reasons": ["first_seen_large_amount"]}
    assert opened.data["capture_method"] == "manual"


def test_the_list_shows_each_payment_with_its_own_assessment(create, storefront):
    allowed = create().json()
    held = create(**HELD).json()

    listed = {p["id"]: (p["risk"], p["review"]) for p in storefront.get("/api/v1/payments/").json()["results"]}

    assert listed == {
        allowed["id"]: ({"score": 0, "level": "normal"}, None),
        held["id"]: ({"score": 50, "level": "elevated"}, {"state": "pending", "reasons": ["first_seen_large_amount"]}),
    }


def test_the_event_feed_shows_the_review_fields(create, storefront):
    created = create(**HELD).json()

    feed = storefront.get(f"/api/v1/payments/{created['id']}/events/").json()["results"]

    assert [e["type"] for e in feed] == ["payment.initiated", "payment.review_opened"]
    assert feed[1]["data"]["object"]["review"] == {"state": "pending", "reasons": ["first_seen_large_amount"]}


def test_settings_changed_after_this_process_read_them_decide_the_next_payment(create, rules):
    # given: this process has read the rules with a payment
    first = create(amount=2000)
    assert first.status_code == 201, first.json()
    known = assessment_of(first).settings_version

    # when: the settings change in the database (as another process's staff change would leave them)
    rules(version=known + 6)
    second = create(amount=2000, customer_id="cus_2")

    # then: the next payment ran with the settings as stored now
    assert assessment_of(second).settings_version == known + 6
