"""The simulator's own disputes reach the inbox "moments later": the beat task hands them over, once each."""

import pytest

from disputes.models import Dispute
from events.models import Event
from webhooks.models import WebhookEvent
from webhooks.tasks import deliver_simulator_events

pytestmark = pytest.mark.django_db


def _pay(storefront, token: str, key: str) -> str:
    body = {"amount": 4200, "currency": "usd", "customer_id": "cus_beat", "payment_method": token, "confirm": True}
    created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert created.status_code == 201, created.json()
    return created.json()["id"]


def test_the_beat_task_delivers_a_test_cards_dispute_once(storefront, tasks_inline, django_capture_on_commit_callbacks):
    payment_id = _pay(storefront, "pm_card_createDispute", "beat-1")
    assert not Dispute.objects.exists()  # disputed at the gateway; not told yet

    with django_capture_on_commit_callbacks(execute=True):
        delivered = deliver_simulator_events.delay().get()

    assert delivered == 2  # charge.dispute.created, then charge.dispute.funds_withdrawn
    listed = storefront.get("/api/v1/disputes/", {"payment": payment_id}).json()["results"]
    assert [(d["status"], d["amount"], d["funds_withdrawn"]) for d in listed] == [("needs_response", 4200, True)]
    assert set(WebhookEvent.objects.values_list("type", flat=True)) == {
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    }
    assert deliver_simulator_events.delay().get() == 0  # nothing queued twice
    assert Event.objects.filter(type="dispute.created").count() == 1


def test_an_ordinary_card_is_not_disputed_and_off_the_simulator_nothing_is_read(storefront, settings, tasks_inline):
    _pay(storefront, "pm_card_visa", "beat-2")
    assert deliver_simulator_events.delay().get() == 0
    _pay(storefront, "pm_card_createDispute", "beat-3")
    settings.PAYMENTS_GATEWAY = "stripe"
    assert deliver_simulator_events.delay().get() == 0
    settings.PAYMENTS_GATEWAY = "simulator"
    assert deliver_simulator_events.delay().get() == 2  # still queued for the simulator's own inbox
    assert Dispute.objects.count() == 1
