"""Each metric of docs/api.md "Operations" moves with the behaviour it counts, as /metrics shows it.

One process here (no PROMETHEUS_MULTIPROC_DIR): counters are read from /metrics before and after,
since they only grow. Status changes are counted when their transaction commits, hence
`django_capture_on_commit_callbacks(execute=True)` around the requests that make them.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.services.status import payment_status_change
from tests.events.factories import EventFactory
from tests.payments.factories import PaymentFactory
from tests.reconciliation.factories import DiscrepancyFactory
from tests.webhooks import payloads
from tests.webhooks.conftest import SECRET, post, send, sign

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset], float]


def scrape() -> Samples:
    """Every sample of /metrics, keyed by (name, labels)."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


USD_SIMULATOR = {"currency": "usd", "gateway": "simulator"}


# --- payment_transactions_total ----------------------------------------------------------------------
def test_a_payment_created_and_confirmed_counts_each_status_it_takes(
    storefront, create_payment, django_capture_on_commit_callbacks
):
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        created = create_payment(payment_method="pm_card_visa")
        confirmed = storefront.post(f"/api/v1/payments/{created.json()['id']}/confirm/", {}, format="json")

    after = scrape()
    assert (created.json()["status"], confirmed.json()["status"]) == ("requires_confirmation", "succeeded")
    assert increase(before, after, "payment_transactions_total", status="requires_confirmation", **USD_SIMULATOR) == 1
    assert increase(before, after, "payment_transactions_total", status="succeeded", **USD_SIMULATOR) == 1
    assert increase(before, after, "payment_transactions_total", status="failed", **USD_SIMULATOR) == 0


def test_a_declined_card_counts_a_failed_payment_in_its_currency(create_payment, django_capture_on_commit_callbacks):
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        response = create_payment(currency="eur", payment_method="pm_card_chargeDeclined", confirm=True)

    after = scrape()
    assert response.status_code == 402
    labels = {"currency": "eur", "gateway": "simulator"}
    assert increase(before, after, "payment_transactions_total", status="failed", **labels) == 1
    assert increase(before, after, "payment_transactions_total", status="failed", **USD_SIMULATOR) == 0


def _cancel_then_fail(payment: Payment) -> None:
    with transaction.atomic():
        payment_status_change(Payment.objects.select_for_update().get(pk=payment.pk), "canceled", source="api")
        raise RuntimeError("the transaction fails after the change")


def test_a_status_change_rolled_back_is_not_counted(django_capture_on_commit_callbacks):
    payment = PaymentFactory(requires_confirmation=True)
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        _cancel_then_fail(payment)

    after = scrape()
    assert increase(before, after, "payment_transactions_total", status="canceled", **USD_SIMULATOR) == 0
    assert Payment.objects.get(pk=payment.pk).status == "requires_confirmation"


# --- payment_errors_total ------------------------------------------------------------------------------
def test_each_error_response_counts_once_by_its_code(storefront, create_payment, anon):
    before = scrape()

    missing = storefront.get("/api/v1/payments/pay_doesnotexist/")
    invalid = create_payment(amount=None)
    declined = create_payment(payment_method="pm_card_chargeDeclined", confirm=True)  # answered by the key's runner
    unauthenticated = anon.get("/api/v1/payments/")
    unknown_path = storefront.get("/api/v1/nothing-here/")  # a plain Django view, not DRF

    after = scrape()
    codes = [r.json()["error"]["code"] for r in (missing, invalid, declined, unauthenticated, unknown_path)]
    assert codes == ["resource_missing", "parameter_missing", "card_declined", "not_authenticated", "resource_missing"]
    assert increase(before, after, "payment_errors_total", code="resource_missing") == 2
    assert increase(before, after, "payment_errors_total", code="parameter_missing") == 1
    assert increase(before, after, "payment_errors_total", code="card_declined") == 1
    assert increase(before, after, "payment_errors_total", code="not_authenticated") == 1


def test_a_successful_request_counts_no_error(storefront, create_payment):
    before = scrape()

    create_payment()
    storefront.get("/api/v1/payments/")

    after = scrape()
    errors = [key for key in after if key[0] == "payment_errors_total" and after[key] != before.get(key, 0.0)]
    assert errors == []


# --- idempotency_requests_total ------------------------------------------------------------------------
def test_a_replay_and_a_reused_key_are_counted_apart_from_new_requests(create_payment):
    before = scrape()

    first = create_payment(key="ops-replay")
    again = create_payment(key="ops-replay")
    other_body = create_payment(key="ops-replay", amount=999)

    after = scrape()
    assert (first.status_code, again.status_code, other_body.status_code) == (201, 201, 422)
    assert again["Idempotent-Replayed"] == "true"
    assert increase(before, after, "idempotency_requests_total", outcome="new") == 1
    assert increase(before, after, "idempotency_requests_total", outcome="replayed") == 1
    assert increase(before, after, "idempotency_requests_total", outcome="conflict") == 1


# --- webhook_events_total ------------------------------------------------------------------------------
def test_a_bad_signature_counts_invalid_signature_with_type_unknown(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    body = '{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded"}'
    before = scrape()

    wrong = post(body, sign(body, secret="whsec_not_ours"))
    missing = post(body, None)

    after = scrape()
    assert (wrong.status_code, missing.status_code) == (400, 400)
    assert increase(before, after, "webhook_events_total", type="unknown", outcome="invalid_signature") == 2
    assert increase(before, after, "payment_errors_total", code="signature_invalid") == 1
    assert increase(before, after, "payment_errors_total", code="signature_missing") == 1


def test_webhook_events_count_applied_duplicate_stale_and_ignored(
    settings, payment_in, tasks_inline, django_capture_on_commit_callbacks
):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    payment = payment_in("processing")
    succeeded = payloads.event(
        "payment_intent.succeeded",
        payloads.payment_intent(payment.gateway_reference, status="succeeded", amount_received=2000),
    )
    late = payloads.event(  # after success: it would not move the payment forward
        "payment_intent.requires_action", payloads.payment_intent(payment.gateway_reference, status="requires_action")
    )
    unknown_type = payloads.event("customer.created", {"id": "cus_1", "object": "customer"})
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        responses = [send(succeeded), send(succeeded), send(late), send(unknown_type)]

    after = scrape()
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert increase(before, after, "webhook_events_total", type="payment_intent.succeeded", outcome="applied") == 1
    assert increase(before, after, "webhook_events_total", type="payment_intent.succeeded", outcome="duplicate") == 1
    assert increase(before, after, "webhook_events_total", type="payment_intent.requires_action", outcome="stale") == 1
    assert increase(before, after, "webhook_events_total", type="customer.created", outcome="ignored") == 1


# --- gateway_request_duration_seconds ------------------------------------------------------------------
def _calls(samples: Samples, operation: str, outcome: str) -> float:
    return value(
        samples, "gateway_request_duration_seconds_count", gateway="simulator", operation=operation, outcome=outcome
    )


def test_every_gateway_call_is_timed_by_operation_and_outcome(storefront, create_payment):
    before = scrape()

    created = create_payment(payment_method="pm_card_visa")
    storefront.post(f"/api/v1/payments/{created.json()['id']}/confirm/", {}, format="json")
    create_payment(payment_method="pm_card_chargeDeclined", confirm=True)  # one call: create and confirm
    create_payment(payment_method="pm_card_threeDSecure2Required", confirm=True)
    SimulatorGateway.inject_fault("create_intent", "unavailable")
    unavailable = create_payment()

    after = scrape()
    assert unavailable.status_code == 502
    calls = {
        (operation, outcome): _calls(after, operation, outcome) - _calls(before, operation, outcome)
        for operation in ("create_intent", "confirm_intent")
        for outcome in ("ok", "declined", "action_required", "retryable", "permanent")
    }
    assert {key: count for key, count in calls.items() if count} == {
        ("create_intent", "ok"): 1,
        ("confirm_intent", "ok"): 1,
        ("create_intent", "declined"): 1,
        ("create_intent", "action_required"): 1,
        ("create_intent", "retryable"): 1,
    }
    bucket = value(
        after,
        "gateway_request_duration_seconds_bucket",
        gateway="simulator",
        operation="confirm_intent",
        outcome="ok",
        le="+Inf",
    )
    assert bucket == _calls(after, "confirm_intent", "ok")


# --- scrape-time gauges --------------------------------------------------------------------------------
def test_outbox_lag_is_the_age_of_the_oldest_unpublished_event_and_dead_letters_apart(settings):
    settings.OUTBOX_MAX_PUBLISH_ATTEMPTS = 3
    Event.objects.all().delete()
    assert value(scrape(), "outbox_lag_seconds") == 0
    now = timezone.now()
    old, dead, published = EventFactory(), EventFactory(publish_attempts=3), EventFactory(published=True)
    Event.objects.filter(pk=old.pk).update(created_at=now - timedelta(seconds=120))
    Event.objects.filter(pk=dead.pk).update(created_at=now - timedelta(hours=5))  # dead-lettered: not lag
    Event.objects.filter(pk=published.pk).update(created_at=now - timedelta(hours=9))

    samples = scrape()

    assert 120 <= value(samples, "outbox_lag_seconds") < 180
    assert value(samples, "outbox_dead_letters") == 1


def test_stuck_operations_count_pending_operations_older_than_the_sweep_threshold(settings):
    settings.PAYMENTS_STUCK_AFTER_SECONDS = 300
    now = timezone.now()
    PaymentFactory(processing=True, pending_operation="confirm", pending_operation_at=now - timedelta(seconds=301))
    PaymentFactory(processing=True, pending_operation="confirm", pending_operation_at=now - timedelta(seconds=60))
    PaymentFactory(succeeded=True)

    assert value(scrape(), "payments_stuck_operations") == 1


def test_open_discrepancies_are_counted_until_resolved():
    first = DiscrepancyFactory()
    DiscrepancyFactory()
    DiscrepancyFactory(state="accepted")
    assert value(scrape(), "reconciliation_open_discrepancies") == 2

    first.state = "resolved"
    first.save()

    assert value(scrape(), "reconciliation_open_discrepancies") == 1


def test_the_scrape_runs_few_queries_and_reports_each_collector(django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        samples = scrape()

    for collector in ("events", "disputes", "payments", "reconciliation", "risk"):
        assert value(samples, "metrics_collector_up", collector=collector) == 1
        assert value(samples, "metrics_collector_duration_seconds", collector=collector) > 0
    assert value(samples, "django_http_requests_before_middlewares_total") >= 1
