"""New refunds go to the gateway in batches: one run claims them, calls the gateway for all at once, applies each.

What a finance person and the storefront rely on: every refund is sent once, with its own key, and ends
where the gateway says; one the gateway refused fails and frees its amount; one the gateway did not answer
is retried with backoff by its own task, within the same bound; one the gateway already holds is never
sent again; two runs at once never send the same refund twice.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.states import InvalidTransition
from refunds.models import Refund
from refunds.selectors import refunds_stuck
from refunds.services import refund_submit, refunds_submit_new

NEW_RUN = "refunds.tasks.submit_new_refunds"
RETRY = "refunds.tasks.submit_refund"


def _pending_refunds(captured_payment, refund, count: int, amount: int = 700, per_payment: int = 1) -> list[Refund]:
    """`count` refunds created through the API, `per_payment` on each payment, not yet submitted."""
    created = []
    payment = None
    for n in range(count):
        if n % per_payment == 0:
            payment = captured_payment(10_000)["id"]
        response = refund(payment, amount=amount)
        assert response.status_code == 201, response.json()
        created.append(response.json()["id"])
    refunds = list(Refund.objects.filter(public_id__in=created).order_by("pk"))
    assert [(r.status, r.attempts) for r in refunds] == [("pending", 0)] * count
    return refunds


@pytest.mark.django_db
def test_one_run_submits_every_new_refund_once_with_its_own_key(captured_payment, refund, simulator):
    refunds = _pending_refunds(captured_payment, refund, 5)

    with CaptureQueriesContext(connection) as queries:
        submitted = refunds_submit_new()

    assert submitted == 5
    for row in Refund.objects.filter(pk__in=[r.pk for r in refunds]).select_related("payment"):
        assert (row.status, row.attempts, row.last_error) == ("succeeded", 1, "")
        assert row.gateway_reference.startswith("re_sim_")
        assert (row.payment.status, row.payment.amount_refunded) == ("partially_refunded", 700)
        assert simulator.calls_for_key(f"{row.public_id}:create") == 1
    assert simulator.performed_count("create_refund") == 5
    # One statement claims the batch; the answers are applied in one transaction: the payments' locks in one
    # statement, the refunds' in another, then one WITH per refund (no read per refund, one commit).
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    locks = [text for text in statements if text.startswith("SELECT") and "FOR UPDATE" in text]
    assert len(locks) == 2, statements
    assert sum(text.startswith("WITH") for text in statements) == 5, statements
    assert sum(text == "COMMIT" for text in statements) <= 1, statements
    assert len(statements) <= 2 + 2 + 5 + 2, statements  # the claims (the second finds none), BEGIN and COMMIT
    assert refunds_submit_new() == 0  # nothing is sent twice


@pytest.mark.django_db
def test_refunds_of_one_payment_in_one_batch_all_count_on_it(captured_payment, refund, simulator):
    """Applied in one transaction, each refund sees the payment as the one before left it: nothing counted twice."""
    refunds = _pending_refunds(captured_payment, refund, 4, amount=2_500, per_payment=4)  # the whole 10,000

    assert refunds_submit_new() == 4

    payment = Payment.objects.get(pk=refunds[0].payment_id)
    assert (payment.status, payment.amount_refunded) == ("refunded", 10_000)
    history = list(payment.status_changes.order_by("pk").values_list("from_status", "to_status"))
    assert history[-4:] == [
        ("succeeded", "partially_refunded"),
        ("partially_refunded", "partially_refunded"),
        ("partially_refunded", "partially_refunded"),
        ("partially_refunded", "refunded"),
    ]
    assert set(Refund.objects.filter(pk__in=[r.pk for r in refunds]).values_list("status", flat=True)) == {"succeeded"}
    events = Event.objects.filter(subject_id=payment.public_id, type="refund.succeeded")
    assert sorted(event.data["id"] for event in events) == sorted(r.public_id for r in refunds)


@pytest.mark.django_db
def test_a_run_takes_batches_until_none_is_left(captured_payment, refund, simulator, settings):
    settings.REFUNDS_SUBMIT_CONCURRENCY = 1  # the calls one after the other: the same outcome
    refunds = _pending_refunds(captured_payment, refund, 5)

    assert refunds_submit_new(batch_size=2) == 5

    assert set(Refund.objects.filter(pk__in=[r.pk for r in refunds]).values_list("status", flat=True)) == {"succeeded"}
    assert simulator.performed_count("create_refund") == 5


@pytest.mark.django_db
def test_a_declined_refund_fails_and_frees_its_amount(captured_payment, refund, simulator):
    (failing,) = _pending_refunds(captured_payment, refund, 1, amount=10_000)
    SimulatorGateway.inject_fault("create_refund", "permanent")

    assert refunds_submit_new() == 1

    failing.refresh_from_db()
    assert (failing.status, failing.failure_reason) == ("failed", "The simulated gateway refused the request.")
    assert Payment.objects.get(pk=failing.payment_id).amount_refunded == 0
    assert refund(failing.payment.public_id, amount=10_000).status_code == 201  # the whole amount is refundable again


@pytest.mark.django_db(transaction=True)
def test_a_refund_the_gateway_did_not_answer_goes_to_its_retry_task_as_the_first_retry(
    captured_payment, refund, simulator, broker_queue
):
    refunds = _pending_refunds(captured_payment, refund, 3)
    broker_queue("gateway")  # the creations' own trigger, not this test's subject
    SimulatorGateway.inject_fault("create_refund", "unavailable", times=1)
    before = datetime.now(tz=UTC)

    assert refunds_submit_new() == 3

    rows = {r.pk: r for r in Refund.objects.filter(pk__in=[r.pk for r in refunds])}
    waiting = [r for r in rows.values() if r.status == "pending"]
    assert len(waiting) == 1  # which one met the fault depends on the threads: the others succeeded
    assert sorted(r.status for r in rows.values()) == ["pending", "succeeded", "succeeded"]
    assert (waiting[0].attempts, waiting[0].needs_attention) == (1, False)
    assert "GatewayUnavailable" in waiting[0].last_error
    retries = [task for task in broker_queue("gateway") if task.name == RETRY]
    assert [(task.kwargs, task.retries) for task in retries] == [({"refund_id": waiting[0].pk}, 1)]
    assert datetime.fromisoformat(retries[0].eta) > before  # with backoff, not at once

    assert refund_submit(refund_id=waiting[0].pk).status == "succeeded"  # what the retry task does, same key
    assert simulator.performed_count("create_refund") == 3


@pytest.mark.django_db
def test_a_refund_already_tried_or_held_by_the_gateway_is_not_claimed(captured_payment, refund, simulator):
    retrying, held = _pending_refunds(captured_payment, refund, 2)
    Refund.objects.filter(pk=retrying.pk).update(attempts=1)  # its own retry task has it
    Refund.objects.filter(pk=held.pk).update(gateway_reference="re_sim_pending_at_gateway")

    assert refunds_submit_new() == 0

    assert refund_submit(refund_id=held.pk).status == "pending"  # nor sent again by hand: its answer comes by webhook
    assert simulator.call_count("create_refund") == 0
    Refund.objects.filter(pk__in=[retrying.pk, held.pk]).update(updated_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert list(refunds_stuck().values_list("pk", flat=True)) == [retrying.pk]  # the sweep leaves the held one alone


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_never_send_a_refund_twice(captured_payment, refund, simulator, settings, caplog):
    settings.REFUNDS_SUBMIT_CONCURRENCY = 4
    refunds = _pending_refunds(captured_payment, refund, 16, per_payment=4)  # runs meet on a payment's row lock
    counts: list[int] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            counts.append(refunds_submit_new(batch_size=3))
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == 16
    assert set(Refund.objects.filter(pk__in=[r.pk for r in refunds]).values_list("status", "attempts")) == {
        ("succeeded", 1)
    }
    assert simulator.call_count("create_refund") == simulator.performed_count("create_refund") == 16
    amounts = Payment.objects.filter(refunds__in=refunds).distinct().values_list("status", "amount_refunded")
    assert list(amounts) == [("partially_refunded", 2800)] * 4
    # Both runs lock their payments in id order: they wait on each other, never deadlock (no batch fell apart).
    assert "not applied together" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_creating_refunds_sends_one_run_for_all_and_no_task_per_refund(captured_payment, refund, broker_queue):
    payments = [captured_payment(10_000)["id"] for _ in range(3)]
    broker_queue("gateway")

    for payment in payments:
        assert refund(payment, amount=100).status_code == 201

    sent = broker_queue("gateway")
    assert [task.name for task in sent] == [NEW_RUN]  # the later commits found the run scheduled
    assert sent[0].eta is not None  # REFUNDS_SUBMIT_DELAY_MS later, for the refunds committed meanwhile


@contextmanager
def status_changes_refused(refund: Refund) -> Iterator[None]:
    """PostgreSQL refuses to change `refund`'s status (a trigger raising) for the block: its answer fails to apply."""
    table = connection.ops.quote_name(Refund._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_refund_status() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF OLD.id = {int(refund.pk)} AND NEW.status IS DISTINCT FROM OLD.status THEN "
            "RAISE EXCEPTION 'the server refused the write'; END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse_refund_status BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_refund_status()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER refuse_refund_status ON {table}")
            cursor.execute("DROP FUNCTION refuse_refund_status()")


@pytest.mark.django_db(transaction=True)
def test_an_error_applying_one_answer_sends_that_refund_alone_and_the_others_go_on(
    captured_payment, refund, simulator, broker_queue
):
    first, second = _pending_refunds(captured_payment, refund, 2)
    broker_queue("gateway")

    with status_changes_refused(first):
        assert refunds_submit_new() == 2

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, second.status) == ("pending", 1, "succeeded")
    retries = [task for task in broker_queue("gateway") if task.name == RETRY]
    assert [(task.kwargs, task.retries) for task in retries] == [({"refund_id": first.pk}, 1)]
    assert refund_submit(refund_id=first.pk).status == "succeeded"  # its retry: the same key, refunded once
    assert simulator.performed_count("create_refund") == 2


@pytest.mark.django_db(transaction=True)
def test_a_call_failing_outside_the_gateway_errors_fails_the_run_after_the_others_are_applied(
    captured_payment, refund, simulator, monkeypatch
):
    from refunds.services import batch

    first, second = _pending_refunds(captured_payment, refund, 2)
    answer = batch.gateway_answer

    def broken_for_the_first(submission):
        if submission.refund_id == first.pk:
            raise RuntimeError("a bug in the adapter")
        return answer(submission)

    monkeypatch.setattr(batch, "gateway_answer", broken_for_the_first)

    with pytest.raises(RuntimeError, match="a bug in the adapter"):
        refunds_submit_new()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, second.status) == ("pending", 1, "succeeded")  # the sweep takes the first


@pytest.mark.django_db(transaction=True)
def test_a_refund_whose_payment_refuses_the_change_fails_the_run_after_the_ones_before_it(
    captured_payment, refund, simulator
):
    """As when the answers were applied one by one: the batch's transaction falls apart, the refunds before the
    refused one are applied alone, and the run fails at it (it waits, pending, for the stuck sweep)."""
    first, second = _pending_refunds(captured_payment, refund, 2)
    # the second's payment moved meanwhile to a status a refund cannot succeed from (a row as staff might leave it)
    Payment.objects.filter(pk=second.payment_id).update(status="requires_capture")

    with pytest.raises(InvalidTransition):
        refunds_submit_new()

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("succeeded", "pending")
    assert Payment.objects.get(pk=first.payment_id).amount_refunded == 700
    assert Payment.objects.get(pk=second.payment_id).amount_refunded == 0
