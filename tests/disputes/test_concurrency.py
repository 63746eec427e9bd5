"""Concurrent news of one dispute (PostgreSQL, real threads): the payment's lock makes one dispute and one story."""

import pytest

from disputes.models import Dispute
from events.models import Event
from tests.helpers import run_in_threads
from tests.webhooks.conftest import body_of
from tests.webhooks.factories import WebhookEventFactory
from webhooks import services

THREADS = 12


@pytest.mark.django_db(transaction=True)
def test_every_step_of_a_new_dispute_processed_at_once_stores_it_once(story):
    # given: each step of a won dispute stored, none processed, several times over (another event id each)
    told = story()
    rows = []
    for round_ in range(THREADS // 5 + 1):
        for event in told.won():
            event["id"] = f"{event['id']}_{round_}"
            rows.append(WebhookEventFactory(stripe_id=event["id"], type=event["type"], body=body_of(event)))

    # when: all processed at the same moment
    results = run_in_threads([lambda row=row: services.webhook_event_process(webhook_event_id=row.pk) for row in rows])

    # then
    assert {result.status for result in results} <= {"processed", "ignored"}, results
    dispute = Dispute.objects.get()
    told.payment.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("won", True, True)
    assert (told.payment.amount_disputed, told.payment.amount_dispute_held) == (0, 0)
    types = list(Event.objects.filter(subject_id=dispute.public_id).values_list("type", flat=True))
    for once in ("dispute.created", "dispute.funds_withdrawn", "dispute.closed", "dispute.funds_reinstated"):
        assert types.count(once) == 1, types
    assert Event.objects.filter(subject_id=told.payment.public_id, type="payment.dispute_opened").count() == 1
