"""A refund create costs a fixed number of statements in one commit, whatever the payment's refund history.

4: the client 1; one transaction: the payment found by its public id and client with its row lock 1 (404
unless the client may refund it: `payments.locks.lock_payment_of`, no read of its id first), what is left to
refund with the new refund's id drawn from its sequence 1, and one `WITH` (`config.rows.batched`) of the
refund, its audit row, history row, event and the request's idempotency key inserted with its answer 1
(`KeyClaim.answer`: the key costs no statement or commit of its own). Issue 14 asks 8.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from refunds.models import Refund

pytestmark = pytest.mark.django_db

REFUND_BUDGET = 4


def _measured(call):
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code == 201, response.json()
    sql = [query["sql"] for query in queries]
    atomics = sum(1 for text in sql if text.startswith("SAVEPOINT"))
    statements = [text for text in sql if not text.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    return statements, atomics


@pytest.mark.parametrize("earlier_refunds", [1, 30])
def test_a_refund_create_is_one_commit_within_budget(captured_payment, refund, earlier_refunds):
    payment = captured_payment(amount=100_000)
    for _ in range(earlier_refunds):
        assert refund(payment["id"], amount=10).status_code == 201

    statements, atomics = _measured(lambda: refund(payment["id"], amount=100))

    assert len(statements) <= REFUND_BUDGET
    assert atomics == 1  # the refund, its history, event and the key's answer commit together
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE", "WITH"))]
    assert len(writes) == 1  # the refund, its audit entry, history, event and the key (one WITH): in that atomic
    assert writes[0].startswith('WITH r0 AS (INSERT INTO "refunds_refund"')
    assert "payments_idempotencykey" in writes[0]
    assert Refund.objects.filter(payment__public_id=payment["id"]).count() == earlier_refunds + 1


def test_a_repeated_refund_request_replays_without_a_second_refund(captured_payment, refund):
    payment = captured_payment(amount=5_000)

    first = refund(payment["id"], key="same", amount=5_000)
    again = refund(payment["id"], key="same", amount=5_000)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Refund.objects.count() == 1


def test_submitting_a_refund_costs_a_fixed_number_of_statements(captured_payment, refund):
    """The worker's side: 4 statements. The attempt counted, with what the gateway call needs of the refund
    and its payment, 1 (`_count_attempt`); then one transaction: both row locks 2, and one `WITH`
    (`config.rows.batched`) of the refund's UPDATE, its audit entry, history and event, the payment's
    refunded amount, its entry, history and event 1 (the rows are locked: their UPDATEs wait for the
    batch). The payment is not read again before the locks (`refund_apply_result(payment_id=…)`), nor the
    refund by auditlog before its save (`refunds.saving.refund_save`: the copy `lock_refund` kept is the old side)."""
    from refunds.services.submit import refund_submit

    payment = captured_payment(amount=10_000)
    created = refund(payment["id"], amount=100)
    assert created.status_code == 201
    pending = Refund.objects.get(public_id=created.json()["id"])

    with CaptureQueriesContext(connection) as queries:
        submitted = refund_submit(refund_id=pending.pk)

    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert submitted.status == "succeeded"
    assert len(statements) <= 4, statements
    assert sum(text.startswith("WITH") for text in statements) == 1, statements
    payment_row = Refund.objects.select_related("payment").get(pk=pending.pk).payment
    assert (payment_row.status, payment_row.amount_refunded) == ("partially_refunded", 100)
    assert payment_row.status_changes.filter(to_status="partially_refunded").count() == 1
