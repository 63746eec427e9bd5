"""The review sweep (beat, every 15 min): report reviews pending too long, cancel those left past the cancel age.

Defaults: remind after 24 h, cancel after 144 h (before the card authorization expires after 7 days).
"""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from events.models import Event
from payments.models import PaymentStatusChange
from payments.services import payment_settle
from risk.models import RiskAssessment
from risk.services import review_approve
from risk.tasks import sweep_reviews
from tests.risk.conftest import HELD

pytestmark = pytest.mark.django_db

OVERDUE = "Payment review overdue"


@pytest.fixture
def start():
    return timezone.now()


@pytest.fixture
def held_at(create_at):
    """A payment held (authorized, manual capture) at a given moment; returns its assessment."""

    def make(moment, customer_id: str = HELD["customer_id"]) -> RiskAssessment:
        response = create_at(
            moment, **{**HELD, "customer_id": customer_id}, payment_method="pm_card_visa", confirm=True
        )
        assert response.json()["review"]["state"] == "pending"
        return RiskAssessment.objects.select_related("payment").get(payment__public_id=response.json()["id"])

    return make


def sweep_at(moment) -> dict[str, int]:
    with time_machine.travel(moment, tick=False):
        return sweep_reviews()


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scraped(name: str, *, at) -> float:
    """A review-queue gauge as /metrics shows it at that moment (computed when scraped, not by the sweep)."""
    with time_machine.travel(at, tick=False):
        body = Client().get("/metrics").content.decode()
    return next(s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == name)


def _overdue_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "risk.services" and r.getMessage() == OVERDUE]


# --- reminders --------------------------------------------------------------------------------------------
def test_before_the_reminder_age_the_sweep_does_nothing(held_at, start, caplog, simulator):
    assessment = held_at(start)

    counts = sweep_at(start + timedelta(hours=23, minutes=59, seconds=59))

    assert counts == {"pending": 1, "reminded": 0, "expired": 0}
    assessment.refresh_from_db()
    assert (assessment.payment.review_state, assessment.reminded_at) == ("pending", None)
    assert _overdue_logs(caplog) == []
    assert simulator.call_count("cancel_intent") == 0


def test_at_the_reminder_age_the_review_is_reported_once(held_at, start, caplog):
    assessment = held_at(start)
    overdue_before = _value("risk_reviews_overdue_total")

    caplog.set_level(logging.WARNING, logger="risk.services")
    first = sweep_at(start + timedelta(hours=24))
    assessment.refresh_from_db()
    reminded_at = assessment.reminded_at
    second = sweep_at(start + timedelta(hours=25))

    assert first == {"pending": 1, "reminded": 1, "expired": 0}
    assert second == {"pending": 1, "reminded": 0, "expired": 0}
    assert reminded_at == start + timedelta(hours=24)
    assessment.refresh_from_db()
    assert assessment.reminded_at == reminded_at
    assert assessment.payment.review_state == "pending"
    logs = _overdue_logs(caplog)
    assert len(logs) == 1
    assert logs[0].levelno == logging.WARNING
    assert (logs[0].payment, logs[0].pending_hours) == (assessment.payment.public_id, 24)
    assert _value("risk_reviews_overdue_total") == overdue_before + 1


def test_the_gauges_show_the_queue_size_and_the_oldest_age(held_at, start):
    held_at(start, customer_id="cus_old")
    held_at(start + timedelta(hours=2), customer_id="cus_young")

    at = start + timedelta(hours=3)

    assert _scraped("risk_reviews_pending", at=at) == 2
    assert _scraped("risk_review_oldest_age_seconds", at=at) == 3 * 3600


def test_reviews_past_the_reminder_age_are_a_gauge_at_scrape_time_without_a_sweep(held_at, start):
    held_at(start, customer_id="cus_old")
    held_at(start + timedelta(hours=2), customer_id="cus_young")

    assert _scraped("risk_reviews_overdue", at=start + timedelta(hours=24) - timedelta(seconds=1)) == 0
    assert _scraped("risk_reviews_overdue", at=start + timedelta(hours=24)) == 1
    assert _scraped("risk_reviews_overdue", at=start + timedelta(hours=26)) == 2


def test_decided_reviews_are_neither_reported_nor_counted(held_at, start, reviewer):
    assessment = held_at(start)
    review_approve(payment_id=assessment.payment_id, actor=reviewer, reason="Known customer")

    counts = sweep_at(start + timedelta(hours=200))

    assert counts == {"pending": 0, "reminded": 0, "expired": 0}
    assert _scraped("risk_reviews_pending", at=start + timedelta(hours=200)) == 0
    assert _scraped("risk_review_oldest_age_seconds", at=start + timedelta(hours=200)) == 0
    assessment.refresh_from_db()
    assert (assessment.payment.review_state, assessment.reminded_at) == ("approved", None)


# --- expiry -----------------------------------------------------------------------------------------------
def test_before_the_cancel_age_the_payment_stays_held(held_at, start, simulator):
    assessment = held_at(start)

    counts = sweep_at(start + timedelta(hours=144) - timedelta(seconds=1))

    assert counts["expired"] == 0
    assessment.refresh_from_db()
    assert assessment.payment.review_state == "pending"
    assert assessment.payment.status == "requires_capture"
    assert simulator.call_count("cancel_intent") == 0


def test_at_the_cancel_age_the_review_is_rejected_and_the_payment_canceled(held_at, start, simulator, storefront):
    assessment = held_at(start)
    expired_before = _value("risk_reviews_closed_total", outcome="expired")

    counts = sweep_at(start + timedelta(hours=144))

    assert counts == {"pending": 0, "reminded": 1, "expired": 1}
    assessment.refresh_from_db()
    assert (assessment.payment.review_state, assessment.reviewed_by) == ("rejected", None)
    assert assessment.review_note == "Not reviewed within 144 h: canceled before the authorization expires."
    payment = assessment.payment
    payment.refresh_from_db()
    assert (payment.status, payment.cancellation_reason, payment.amount_capturable) == ("canceled", "fraudulent", 0)
    assert simulator.call_count("cancel_intent") == 1
    types = list(Event.objects.filter(subject_id=payment.public_id).order_by("sequence").values_list("type", flat=True))
    assert types[-2:] == ["payment.review_closed", "payment.canceled"]
    assert PaymentStatusChange.objects.get(payment=payment, to_status="canceled").source == "worker"
    shown = storefront.get(f"/api/v1/payments/{payment.public_id}/").json()
    assert shown["review"] == {"state": "rejected", "reasons": ["first_seen_large_amount"]}
    assert _value("risk_reviews_closed_total", outcome="expired") == expired_before + 1
    assert _scraped("risk_reviews_pending", at=start + timedelta(hours=144)) == 0


def test_an_expired_review_is_closed_once(held_at, start, simulator):
    held_at(start)
    sweep_at(start + timedelta(hours=144))

    again = sweep_at(start + timedelta(hours=150))

    assert again == {"pending": 0, "reminded": 0, "expired": 0}
    assert simulator.call_count("cancel_intent") == 1
    assert Event.objects.filter(type="payment.review_closed").count() == 1


def test_only_reviews_past_the_cancel_age_expire(held_at, start, simulator):
    old = held_at(start, customer_id="cus_old")
    young = held_at(start + timedelta(hours=100), customer_id="cus_young")

    counts = sweep_at(start + timedelta(hours=144))

    assert counts == {"pending": 1, "reminded": 2, "expired": 1}
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.payment.review_state, young.payment.review_state) == ("rejected", "pending")
    assert simulator.call_count("cancel_intent") == 1


def test_a_cancel_the_gateway_did_not_answer_is_finished_later(held_at, start, simulator):
    assessment = held_at(start)
    simulator.inject_fault("cancel_intent", "unavailable")

    counts = sweep_at(start + timedelta(hours=144))
    assessment.refresh_from_db()
    pending = (assessment.payment.status, assessment.payment.pending_operation)
    settled = payment_settle(payment_id=assessment.payment_id)

    assert counts["expired"] == 1
    assert assessment.payment.review_state == "rejected"
    assert pending == ("requires_capture", "cancel")
    assert settled.status == "canceled"
    assert simulator.performed_count("cancel_intent") == 1


def test_changed_ages_apply_to_the_next_sweep(held_at, start, rules):
    rules(review_remind_hours=1, review_cancel_hours=2)
    assessment = held_at(start)

    reminded = sweep_at(start + timedelta(hours=1))
    expired = sweep_at(start + timedelta(hours=2))

    assert reminded == {"pending": 1, "reminded": 1, "expired": 0}
    assert expired == {"pending": 0, "reminded": 0, "expired": 1}
    assessment.refresh_from_db()
    assert assessment.review_note == "Not reviewed within 2 h: canceled before the authorization expires."
