"""The webhook acknowledgement costs one statement: the stored event's insert (a worker processes it later)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.webhooks.conftest import send
from tests.webhooks.payloads import event, payment_intent
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

ACK_BUDGET = 2


def _statements(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_a_new_event_is_acknowledged_within_budget_and_a_repeat_writes_nothing():
    delivery = event("payment_intent.succeeded", payment_intent("pi_ack", status="succeeded"))

    with CaptureQueriesContext(connection) as first:
        new = send(delivery)
    with CaptureQueriesContext(connection) as again:
        repeat = send(delivery)

    assert (new.status_code, repeat.status_code) == (200, 200)
    assert len(_statements(first)) <= ACK_BUDGET
    assert len(_statements(again)) <= ACK_BUDGET
    assert WebhookEvent.objects.count() == 1


def test_a_stale_event_writes_nothing_to_the_payment(payment_in, deliver):
    payment = payment_in("succeeded")
    stale = event(
        "payment_intent.amount_capturable_updated",
        payment_intent(payment.gateway_reference, status="requires_capture", amount_capturable=2000),
    )

    with CaptureQueriesContext(connection) as queries:
        deliver(stale)

    payment_writes = [sql for sql in _statements(queries) if sql.startswith('UPDATE "payments_payment"')]
    after = type(payment).objects.get(pk=payment.pk)
    assert payment_writes == []
    assert (after.status, after.updated_at) == ("succeeded", payment.updated_at)


def test_processing_a_stale_event_costs_a_fixed_number_of_statements(payment_in):
    """The worker's side of a repeated `payment_intent.succeeded` (the common stale delivery): 4 (was 6, then 5). The
    event's row lock 1; the payment found by its gateway id 1 (no row read, nothing decrypted) and locked 1, once;
    the intent applied to that locked copy (the state machine finds nothing to move: no statement, no savepoint);
    the row's outcome 1, not its body again."""
    from webhooks.services import webhook_event_process

    payment = payment_in("succeeded")
    stale = event("payment_intent.succeeded", payment_intent(payment.gateway_reference, status="succeeded"))
    assert send(stale).status_code == 200
    stored = WebhookEvent.objects.get()

    with CaptureQueriesContext(connection) as queries:
        processed = webhook_event_process(webhook_event_id=stored.pk)

    statements = _statements(queries)
    assert (processed.status, processed.ignored_reason, processed.payment_id) == ("ignored", "stale", payment.pk)
    assert len(statements) <= 4, statements
    # one savepoint and its release: the event's own transaction, nested in the test's (none around the intent)
    assert len(queries) - len(statements) == 2, [q["sql"] for q in queries]
    saved = [sql for sql in statements if sql.startswith('UPDATE "webhooks_webhookevent"')]
    assert len(saved) == 1
    assert '"body"' not in saved[0]
    assert WebhookEvent.objects.get().body == stored.body  # still there, still readable
