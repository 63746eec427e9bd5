"""Evidence deadlines: a dispute due within 72 h, then 24 h, without submitted evidence is warned once each time;
`disputes_due_soon{window}` counts them on /metrics."""

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client

from disputes.deadlines import disputes_due_within
from disputes.models import Dispute
from disputes.tasks import warn_dispute_deadlines
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
_refs = itertools.count(1)


def _dispute(shop, *, due_in_hours: float, status: str = "needs_response", **fields) -> Dispute:
    payment = PaymentFactory(succeeded=True, client=shop, amount=2000)
    return Dispute.objects.create(
        client=shop,
        payment=payment,
        amount=2000,
        currency="usd",
        status=status,
        evidence_due_by=NOW + timedelta(hours=due_in_hours),
        gateway_name="simulator",
        gateway_reference=f"du_deadline_{next(_refs)}",
        **fields,
    )


def _warnings(caplog) -> list[tuple[str, str, float]]:
    return [
        (record.dispute, record.window, record.hours_left)
        for record in caplog.records
        if record.name == "disputes.deadlines" and record.levelno == logging.WARNING
    ]


def _run_at(at: datetime, caplog) -> tuple[int, list[tuple[str, str, float]]]:
    caplog.clear()
    with time_machine.travel(at, tick=False), caplog.at_level(logging.WARNING, logger="disputes.deadlines"):
        given = warn_dispute_deadlines()
    return given, _warnings(caplog)


def test_a_dispute_due_in_80_hours_is_not_warned(shop, caplog):
    _dispute(shop, due_in_hours=80)

    assert _run_at(NOW, caplog) == (0, [])


def test_warned_once_within_72_hours_and_once_within_24_hours(shop, caplog):
    # given a dispute due in 80 hours
    dispute = _dispute(shop, due_in_hours=80)
    assert _run_at(NOW, caplog) == (0, [])

    # when 71 hours are left: one 72 h warning, and none on the next run
    assert _run_at(NOW + timedelta(hours=9), caplog) == (1, [(dispute.public_id, "72h", 71.0)])
    assert _run_at(NOW + timedelta(hours=9, minutes=15), caplog) == (0, [])

    # when 23 hours are left: one 24 h warning, and none on the next run
    assert _run_at(NOW + timedelta(hours=57), caplog) == (1, [(dispute.public_id, "24h", 23.0)])
    assert _run_at(NOW + timedelta(hours=57, minutes=15), caplog) == (0, [])


def test_a_dispute_first_seen_within_24_hours_gets_the_24h_warning_only(shop, caplog):
    inquiry = _dispute(shop, due_in_hours=10, status="warning_needs_response")

    assert _run_at(NOW, caplog) == (1, [(inquiry.public_id, "24h", 10.0)])
    assert _run_at(NOW + timedelta(hours=1), caplog) == (0, [])


def test_submitted_closed_or_past_due_disputes_are_not_warned(shop, caplog):
    _dispute(shop, due_in_hours=23, evidence_submitted_at=NOW - timedelta(hours=1), submission_count=1)
    _dispute(shop, due_in_hours=23, status="under_review")
    _dispute(shop, due_in_hours=23, status="lost")
    _dispute(shop, due_in_hours=23, status="won")
    _dispute(shop, due_in_hours=23, status="warning_closed")
    _dispute(shop, due_in_hours=-1)  # past its due date: nothing can be sent any more

    assert _run_at(NOW, caplog) == (0, [])


def test_the_due_soon_counts_per_window(shop):
    _dispute(shop, due_in_hours=80)
    _dispute(shop, due_in_hours=71)
    _dispute(shop, due_in_hours=48)
    _dispute(shop, due_in_hours=23)
    _dispute(shop, due_in_hours=23, status="under_review")
    _dispute(shop, due_in_hours=2, status="lost")

    assert disputes_due_within(now=NOW) == {"72h": 3, "24h": 1}


def test_metrics_show_disputes_due_soon(shop):
    _dispute(shop, due_in_hours=71)
    _dispute(shop, due_in_hours=23)
    _dispute(shop, due_in_hours=5)

    with time_machine.travel(NOW, tick=False):
        body = Client().get("/metrics").content.decode()

    assert "# TYPE disputes_due_soon gauge" in body
    assert 'disputes_due_soon{window="72h"} 3.0' in body
    assert 'disputes_due_soon{window="24h"} 2.0' in body
    assert 'metrics_collector_up{collector="disputes"} 1.0' in body


def test_the_warnings_are_scheduled_every_15_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["disputes-warn-deadlines"]

    assert (entry["task"], entry["schedule"]) == (warn_dispute_deadlines.name, 900.0)
