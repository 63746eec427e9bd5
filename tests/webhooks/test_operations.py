"""Operating the inbox: failures are kept with their traceback, retried by the worker, replayed by the
`process_webhooks` command and the admin's "reprocess" action."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from refunds.models import Refund
from tests.accounts.factories import StaffUserFactory
from tests.helpers import wait_for
from tests.payments.factories import PaymentFactory
from tests.webhooks import payloads
from tests.webhooks.conftest import send
from tests.webhooks.factories import WebhookEventFactory
from webhooks.models import WebhookEvent

CHANGELIST = "/admin/webhooks/webhookevent/"


def _row(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_id=event["id"])


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _early_refund(payment) -> dict:
    """A refund reported for a payment we do not know as captured yet: applying it fails."""
    return payloads.event("refund.created", payloads.refund("re_early", intent=payment.gateway_reference, amount=1000))


@pytest.mark.django_db
def test_refund_reported_before_the_capture_fails_then_is_replayed_by_the_command(payment_in, deliver, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("processing", amount=10_000)
    reference = payment.gateway_reference
    early_refund = payloads.event("refund.created", payloads.refund("re_early", intent=reference, amount=1000))
    succeeded = payloads.event(
        "payment_intent.succeeded", payloads.payment_intent(reference, status="succeeded", amount_received=10_000)
    )

    deliver(early_refund)
    row = _row(early_refund)
    failed_first = (row.status, row.attempts, Refund.objects.count())
    deliver(succeeded)
    output = _run("process_webhooks", "--failed")

    assert failed_first == ("failed", 1, 0)
    assert "InvalidTransition" in row.last_error
    assert "Traceback" in row.last_error
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error, row.refund.gateway_reference) == ("processed", 2, "", "re_early")
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 1000)
    assert f"[1/1] {early_refund['id']} refund.created: processed" in output
    assert "processed: 1, ignored: 0, failed: 0, skipped: 0" in output


@pytest.mark.django_db
def test_process_webhooks_exits_non_zero_when_an_event_still_fails(payment_in, deliver, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("processing", amount=10_000)
    event = payloads.event("refund.created", payloads.refund("re_x", intent=payment.gateway_reference, amount=10))
    deliver(event)

    with pytest.raises(CommandError, match="1 event"):
        _run("process_webhooks", "--failed", "--type", "refund.created")

    assert _row(event).attempts == 2


@pytest.mark.django_db
def test_process_webhooks_by_ids_reruns_ignored_events_and_skips_processed_ones(payment_in, deliver):
    payment = payment_in("requires_capture")
    reference = payment.gateway_reference
    intent = payloads.payment_intent(reference, status="requires_action")
    stale = payloads.event("payment_intent.requires_action", intent)
    deliver(stale)
    captured = payloads.event("charge.captured", payloads.charge(intent=reference, amount=2000))
    deliver(captured)

    output = _run("process_webhooks", "--ids", stale["id"], captured["id"], "evt_missing")

    assert (_row(stale).status, _row(stale).ignored_reason, _row(stale).attempts) == ("ignored", "stale", 2)
    assert _row(captured).attempts == 1
    assert "3 event(s)" not in output
    assert f"[1/2] {stale['id']} payment_intent.requires_action: ignored" in output
    assert f"[2/2] {captured['id']} charge.captured: skipped" in output
    assert output.strip().endswith("processed: 0, ignored: 1, failed: 0, skipped: 1, not stored: 1")
    payment.refresh_from_db()
    assert payment.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_failing_event_is_retried_with_backoff_then_left_failed(payment_in, worker, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 2
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.05
    settings.WEBHOOKS_RETRY_MAX_SECONDS = 0.1
    payment = payment_in("requires_capture", amount=10_000)
    event = _early_refund(payment)

    response = send(event)
    row = wait_for(lambda: WebhookEvent.objects.filter(stripe_id=event["id"], attempts=3).first(), timeout=15)

    assert response.status_code == 200
    assert row.status == "failed"
    assert "InvalidTransition" in row.last_error
    assert payment.refunds.count() == 0


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(StaffUserFactory(superuser=True))
    return client


@pytest.mark.django_db
def test_admin_lists_events_with_filters_read_only(payment_in, deliver, staff, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("requires_capture", amount=10_000)
    failing = _early_refund(payment)
    deliver(failing)
    unknown = payloads.event("customer.created", {"id": "cus_1", "object": "customer"})
    deliver(unknown)

    failed_only = staff.get(CHANGELIST, {"status__exact": "failed"})
    refunds = staff.get(CHANGELIST, {"type": "refund.created"})
    others = staff.get(CHANGELIST, {"type": "other"})
    today = staff.get(CHANGELIST, {"received_at__gte": "2000-01-01 00:00:00+00:00"})
    detail = staff.get(f"{CHANGELIST}{_row(failing).pk}/change/")

    assert {page.status_code for page in (failed_only, refunds, others, today)} == {200}
    assert failing["id"] in failed_only.content.decode()
    assert unknown["id"] not in failed_only.content.decode()
    assert failing["id"] in refunds.content.decode()
    assert unknown["id"] not in refunds.content.decode()
    assert unknown["id"] in others.content.decode()
    assert failing["id"] not in others.content.decode()
    assert failing["id"] in today.content.decode()
    assert unknown["id"] in today.content.decode()
    assert detail.status_code == 200
    assert "InvalidTransition" in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()


@pytest.mark.django_db
def test_admin_reprocess_action_applies_a_failed_event(payment_in, deliver, staff, storefront, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("requires_capture", amount=10_000)
    failing = _early_refund(payment)
    deliver(failing)
    captured = storefront.post(f"/api/v1/payments/{payment.public_id}/capture/", {}, format="json")

    response = staff.post(CHANGELIST, {"action": "reprocess", "_selected_action": [_row(failing).pk]}, follow=True)

    assert captured.status_code == 200
    assert response.status_code == 200
    assert "Reprocessed: 1 processed, 0 ignored, 0 failed, 0 skipped." in response.content.decode()
    assert _row(failing).status == "processed"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 1000)
    from audit.models import StaffAction

    action = StaffAction.objects.get(action="reprocess_webhook")
    assert (action.object_type, action.object_id, action.after) == (
        "webhook_event",
        failing["id"],
        {"outcome": "processed"},
    )


@pytest.mark.django_db
def test_reprocess_action_needs_its_permission(payment_in, deliver, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("requires_capture", amount=10_000)
    failing = _early_refund(payment)
    deliver(failing)
    viewer = StaffUserFactory(permissions=["webhooks.view_webhookevent"])
    client = Client()
    client.force_login(viewer)

    page = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "reprocess", "_selected_action": [_row(failing).pk]})

    assert page.status_code == 200
    assert 'value="reprocess"' not in page.content.decode()
    assert _row(failing).status == "failed"


@pytest.mark.django_db
def test_the_payment_page_lists_the_webhooks_that_touched_it(admin_client):
    payment = PaymentFactory(succeeded=True)
    WebhookEventFactory(stripe_id="evt_inline_1", type="payment_intent.succeeded", payment=payment)

    page = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()

    assert "evt_inline_1" in page
    assert "payment_intent.succeeded" in page
