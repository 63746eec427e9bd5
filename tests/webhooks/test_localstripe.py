"""Against localstripe: a real delivery to the live server, and recovery of an event that was never delivered."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from payments.models import Payment
from tests.gateways.conftest import API_KEY
from tests.helpers import wait_for
from tests.webhooks.conftest import SECRET
from tests.webhooks.factories import WebhookEventFactory
from webhooks.models import WebhookCursor, WebhookEvent
from webhooks.tasks import recover_missed_events

TARGET = "payment-service-tests"


@pytest.fixture
def stripe_settings(settings, localstripe):
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    return localstripe


@pytest.fixture
def webhook_target(stripe_settings, live_server):
    """localstripe delivers its events to our live server; afterwards to nobody (its targets outlive tests)."""
    url = f"{stripe_settings.url}/_config/webhooks/{TARGET}"
    target = {"url": live_server.url + "/api/v1/webhooks/stripe/", "secret": SECRET}
    requests.post(url, json=target, timeout=5).raise_for_status()
    yield
    requests.post(url, json={**target, "events": ["none.none"]}, timeout=5).raise_for_status()


def _create_unconfirmed(storefront, key: str) -> dict:
    body = {"amount": 2000, "currency": "usd", "customer_id": "cus_ls", "payment_method": "pm_card_visa"}
    response = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "requires_confirmation"
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_payment_intent_succeeded_which_is_verified_and_processed(
    storefront, stripe_settings, webhook_target, worker
):
    created = _create_unconfirmed(storefront, "ls-e2e-1")

    # The customer confirms on Stripe's side (Stripe.js); we learn the outcome only from the webhook.
    stripe_settings.client.v1.payment_intents.confirm(created["gateway_reference"])
    payment = wait_for(lambda: Payment.objects.filter(public_id=created["id"], status="succeeded").first(), timeout=15)

    # localstripe picks its targets when it sends (a second late), so an earlier test's event may land here too.
    row = WebhookEvent.objects.get(payment=payment)
    assert (row.type, row.status, row.received_via, row.attempts) == (
        "payment_intent.succeeded",
        "processed",
        "webhook",
        1,
    )
    assert row.stripe_id.startswith("evt_")
    assert payment.amount_received == 2000
    history = list(payment.status_changes.order_by("id").values_list("to_status", "source"))
    assert history == [("requires_confirmation", "api"), ("succeeded", "webhook")]
    assert storefront.get(f"/api/v1/payments/{created['id']}/").json()["status"] == "succeeded"


@pytest.mark.django_db
def test_event_never_delivered_is_recovered_from_the_event_list_once(
    storefront, stripe_settings, tasks_inline, django_capture_on_commit_callbacks
):
    created = _create_unconfirmed(storefront, "ls-gap-1")
    stripe_settings.client.v1.payment_intents.confirm(created["gateway_reference"])  # no webhook target: lost

    with django_capture_on_commit_callbacks(execute=True):
        first = recover_missed_events()
    with django_capture_on_commit_callbacks(execute=True):
        second = recover_missed_events()

    assert (first, second) == (1, 0)
    row = WebhookEvent.objects.get()
    assert (row.type, row.status, row.received_via, row.attempts) == (
        "payment_intent.succeeded",
        "processed",
        "recovery",
        1,
    )
    payment = Payment.objects.get(public_id=created["id"])
    assert (payment.status, payment.amount_received) == ("succeeded", 2000)
    assert payment.status_changes.filter(to_status="succeeded").count() == 1
    assert WebhookCursor.objects.get().position >= int(row.created_at.timestamp())


@pytest.mark.django_db
def test_recovery_drains_the_inbox_when_an_event_was_never_processed(stripe_settings, tasks_inline):
    stuck = WebhookEventFactory(
        stripe_id="evt_stuck", type="customer.created", received_at=timezone.now() - timedelta(minutes=10)
    )
    fresh = WebhookEventFactory(stripe_id="evt_fresh", type="customer.created")

    recover_missed_events()

    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.status, stuck.ignored_reason, stuck.attempts) == ("ignored", "unknown_type", 1)
    assert (fresh.status, fresh.attempts) == ("ignored", 1)  # the drain takes every event waiting, once


@pytest.mark.django_db
def test_recovery_sends_no_drain_while_only_fresh_events_wait(stripe_settings, tasks_inline):
    fresh = WebhookEventFactory(stripe_id="evt_fresh", type="customer.created")

    recover_missed_events()

    fresh.refresh_from_db()
    assert (fresh.status, fresh.attempts) == ("received", 0)  # the drain its commit sent may still be on its way


@pytest.mark.django_db
def test_without_stripe_the_recovery_still_requeues_a_stranded_event(settings, tasks_inline):
    settings.STRIPE_SECRET_KEY = ""  # the simulator: no event list to read, but stored events must not be stranded
    stuck = WebhookEventFactory(
        stripe_id="evt_stranded", type="customer.created", received_at=timezone.now() - timedelta(minutes=10)
    )

    assert recover_missed_events() == 0

    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("ignored", 1)
