"""Retention: raw webhook payloads older than WEBHOOK_PAYLOAD_RETENTION_DAYS are purged to ids and outcome by
the daily beat task, in batches, idempotently; late payloads about an erased customer are redacted too."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from privacy.models import RetentionCursor
from privacy.services import webhook_payloads_purge
from privacy.tasks import purge_webhook_payloads
from tests.privacy.conftest import EMAIL
from webhooks.models import WebhookEvent, WebhookStatus

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _event(number: int, received_at: datetime, email: str = EMAIL) -> WebhookEvent:
    body = {
        "id": f"evt_{number}",
        "object": "event",
        "type": "charge.succeeded",
        "created": 1700000000 + number,
        "data": {"object": {"id": f"ch_{number}", "object": "charge", "status": "succeeded",
                            "billing_details": {"email": email, "address": {"line1": "1 Main St"}}}},
    }  # fmt: skip
    return WebhookEvent.objects.create(
        stripe_id=f"evt_{number}",
        type="charge.succeeded",
        body=json.dumps(body),
        received_at=received_at,
        status=WebhookStatus.PROCESSED,
    )


def test_payloads_past_the_retention_are_purged_to_ids_and_outcome_in_batches(settings):
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 90
    old = [_event(n, NOW - timedelta(days=91, minutes=n)) for n in range(5)]
    recent = _event(99, NOW - timedelta(days=89))

    with time_machine.travel(NOW, tick=False):
        assert webhook_payloads_purge(batch_size=2) == 5

    for event in old:
        event.refresh_from_db()
        number = int(event.stripe_id.removeprefix("evt_"))
        assert json.loads(event.body) == {
            "id": event.stripe_id,
            "object": "event",
            "type": "charge.succeeded",
            "created": 1700000000 + number,
            "data": {"object": {"id": f"ch_{number}", "object": "charge", "status": "succeeded"}},
            "redacted": True,
        }
        assert event.status == WebhookStatus.PROCESSED
    recent.refresh_from_db()
    assert EMAIL in recent.body
    cursor = RetentionCursor.objects.get()
    assert (cursor.received_at, cursor.last_id) == (old[0].received_at, old[0].pk)  # the newest of the old ones


def test_the_purge_is_idempotent_and_goes_on_from_where_it_stopped(settings):
    settings.WEBHOOK_PAYLOAD_RETENTION_DAYS = 90
    _event(1, NOW - timedelta(days=95))
    with time_machine.travel(NOW, tick=False):
        assert webhook_payloads_purge() == 1
        assert webhook_payloads_purge() == 0
    later = _event(2, NOW - timedelta(days=80))

    with time_machine.travel(NOW + timedelta(days=11), tick=False):
        assert purge_webhook_payloads.run() == 1  # the beat task

    later.refresh_from_db()
    assert EMAIL not in later.body


def test_a_payload_arriving_after_the_erasure_about_the_customer_is_redacted(finance, subject):
    from customers.models import CustomerGatewayToken

    reference = CustomerGatewayToken.objects.get(customer=subject.customer).reference
    assert finance.delete(f"/api/v1/customers/{subject.customer.public_id}/").status_code == 200
    body = {"id": "evt_late", "type": "customer.deleted", "data": {"object": {"id": reference, "email": EMAIL}}}
    late = WebhookEvent.objects.create(stripe_id="evt_late", type="customer.deleted", body=json.dumps(body))
    unrelated = _event(7, late.received_at)

    assert purge_webhook_payloads.run() == 1

    late.refresh_from_db()
    unrelated.refresh_from_db()
    assert json.loads(late.body) == {
        "id": "evt_late",
        "type": "customer.deleted",
        "data": {"object": {"id": reference}},
        "redacted": True,
    }
    assert EMAIL in unrelated.body
