"""Exactly once on PostgreSQL with real threads: one Stripe event delivered 100 times at the same moment."""

import pytest

from events.models import Event
from tests.helpers import run_in_threads, wait_for
from tests.webhooks import payloads
from tests.webhooks.conftest import body_of, post, sign
from tests.webhooks.factories import WebhookEventFactory
from webhooks import services
from webhooks.models import WebhookEvent

DELIVERIES = 100


@pytest.mark.django_db(transaction=True)
def test_one_event_delivered_100_times_concurrently_is_stored_and_applied_once(payment_in, worker):
    payment = payment_in("requires_capture", amount=5000)
    events_before = Event.objects.filter(subject_id=payment.public_id).count()
    intent = payloads.payment_intent(
        payment.gateway_reference, status="succeeded", amount=5000, capture_method="manual", amount_received=5000
    )
    event = payloads.event("payment_intent.succeeded", intent)
    body = body_of(event)
    signature = sign(body)

    responses = run_in_threads([lambda: post(body, signature) for _ in range(DELIVERIES)])
    row = wait_for(lambda: WebhookEvent.objects.filter(stripe_id=event["id"]).exclude(status="received").first())

    assert [r.status_code for r in responses] == [200] * DELIVERIES
    assert all(r.json() == {"received": True} for r in responses)
    assert WebhookEvent.objects.count() == 1
    assert (row.status, row.attempts, row.payment_id) == ("processed", 1, payment.pk)
    payment.refresh_from_db()
    assert (payment.status, payment.amount_received, payment.amount_capturable) == ("succeeded", 5000, 0)
    assert payment.status_changes.filter(to_status="succeeded").count() == 1
    new_events = list(Event.objects.filter(subject_id=payment.public_id).values_list("type", flat=True))[events_before:]
    assert new_events == ["payment.captured"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_processing_of_one_stored_event_applies_it_once(payment_in):
    payment = payment_in("requires_capture", amount=5000)
    intent = payloads.payment_intent(
        payment.gateway_reference, status="succeeded", amount=5000, capture_method="manual", amount_received=5000
    )
    event = payloads.event("payment_intent.succeeded", intent)
    row = WebhookEventFactory(stripe_id=event["id"], type=event["type"], body=body_of(event))

    results = run_in_threads([lambda: services.webhook_event_process(webhook_event_id=row.pk) for _ in range(20)])

    assert {result.status for result in results} == {"processed"}
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("processed", 1)
    assert payment.status_changes.filter(to_status="succeeded").count() == 1
    assert Event.objects.filter(subject_id=payment.public_id, type="payment.captured").count() == 1
