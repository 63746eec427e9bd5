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
