"""Reconciling disputes with the gateway's (simulator).

Disputes are made with the disputing test card through the API and their webhooks delivered, so the gateway and
we agree; a drift on our side is a lost webhook, an update() or a delete() behind the services' back, and that
is what reconciling must find (and, with `fix`, repair through the disputes service).
"""

import itertools
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from disputes.models import Dispute, DisputeStatusChange
from events.models import Event
from gateways.simulator import SimulatorGateway
from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyState, ReconciliationRun, RunScope, RunStatus
from reconciliation.services import reconcile
from tests.disputes.conftest import _simulator_gateway  # noqa: F401 - the simulator, for every test here
from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline

pytestmark = pytest.mark.django_db

K = DiscrepancyKind
DISPUTES = RunScope.DISPUTES
_customers = itertools.count(1)


@pytest.fixture
def make_disputes(storefront, deliver):  # noqa: F811 - the fixture imported above
    """`count` payments confirmed with the disputing test card through the API, their dispute webhooks delivered."""

    def make(count: int, amount: int = 2000) -> list[Dispute]:
        made = []
        for _ in range(count):
            n = next(_customers)
            body = {
                "amount": amount,
                "currency": "usd",
                "customer_id": f"cus_recon_dp_{n}",
                "payment_method": "pm_card_createDispute",
                "confirm": True,
            }
            created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"recon-dp-{n}")
            assert created.status_code == 201, created.json()
            for event in SimulatorGateway.pending_dispute_events():
                deliver(event)
            made.append(Dispute.objects.get(payment__public_id=created.json()["id"]))
        return made

    return make


def _found(run: ReconciliationRun) -> set[tuple[str, str, int | None, str]]:
    return {(d.kind, d.gateway_reference, d.dispute_id, d.state) for d in run.discrepancies.all()}


# --- finding ----------------------------------------------------------------------------------------------
def test_in_sync_nothing_is_found(make_disputes, window):
    make_disputes(2)

    run = reconcile(**window, scope=DISPUTES)

    assert (run.scope, run.status, run.discrepancies_found) == (DISPUTES, RunStatus.CLEAN, 0)
    assert (run.gateway_disputes, run.our_disputes, run.disputes_matched) == (2, 2, 2)
    assert (run.gateway_records, run.customers_compared, run.gateway_subscriptions) == (0, 0, 0)  # only this pass


def test_every_pass_runs_by_default_and_covers_the_disputes(make_disputes, window):
    make_disputes(1)

    run = reconcile(**window)

    assert (run.scope, run.status, run.discrepancies_found) == (RunScope.ALL, RunStatus.CLEAN, 0)
    assert (run.gateway_records, run.matched) == (1, 1)  # the disputed payment matches its intent
    assert (run.gateway_disputes, run.disputes_matched) == (1, 1)


def test_a_tampered_status_is_a_mismatch_and_a_closed_one_is_not_reopened_by_fix(make_disputes, window):
    # given: ours says won, the gateway still waits for evidence
    tampered, other = make_disputes(2)
    Dispute.objects.filter(pk=tampered.pk).update(status="won")

    # when
    run = reconcile(**window, scope=DISPUTES, fix=True)

    # then: found, and left open (the state machine never leaves `won`)
    found = run.discrepancies.get()
    assert (found.kind, found.dispute_id, found.payment_id, found.state) == (
        K.DISPUTE_STATUS_MISMATCH,
        tampered.pk,
        tampered.payment_id,
        DiscrepancyState.OPEN,
    )
    assert (found.ours, found.theirs) == ({"status": "won"}, {"status": "needs_response"})
    assert found.note == "Not fixed: ours (won) cannot move to what the gateway shows."
    assert (run.status, run.disputes_matched, run.discrepancies_fixed) == (RunStatus.UNRESOLVED, 1, 0)
    assert Dispute.objects.get(pk=tampered.pk).status == "won"
    assert (
        not DisputeStatusChange.objects.filter(dispute=tampered, to_status="needs_response")
        .exclude(from_status="")
        .exists()
    )


def test_a_dispute_decided_at_the_gateway_whose_webhook_was_lost_is_moved_forward_with_fix(make_disputes, window):
    # given: the bank decided, its webhooks never arrived
    dispute = make_disputes(1)[0]
    SimulatorGateway().close_dispute_as(reference=dispute.gateway_reference, outcome="lost")  # events dropped

    # when: found without fix ...
    found_only = reconcile(**window, scope=DISPUTES)
    # ... and fixed with it
    fixed = reconcile(**window, scope=DISPUTES, fix=True)

    # then
    assert _found(found_only) == {(K.DISPUTE_STATUS_MISMATCH, dispute.gateway_reference, dispute.pk, "open")}
    assert _found(fixed) == {(K.DISPUTE_STATUS_MISMATCH, dispute.gateway_reference, dispute.pk, "fixed")}
    assert fixed.discrepancies.get().note == "Applied the gateway's dispute."
    assert (fixed.status, fixed.discrepancies_fixed) == (RunStatus.CLEAN, 1)
    dispute.refresh_from_db()
    assert dispute.status == "lost"
    change = DisputeStatusChange.objects.filter(dispute=dispute).last()
    assert (change.from_status, change.to_status, change.source) == ("needs_response", "lost", "worker")
    assert Event.objects.filter(subject_id=dispute.public_id, type="dispute.closed").count() == 1
    assert reconcile(**window, scope=DISPUTES).status == RunStatus.CLEAN


def test_a_dispute_deleted_here_is_missing_here_and_recorded_again_with_fix(make_disputes, window):
    # given
    kept, lost = make_disputes(2)
    reference, payment_id = lost.gateway_reference, lost.payment_id
    Dispute.objects.filter(pk=lost.pk).delete()

    # when
    found_only = reconcile(**window, scope=DISPUTES)
    fixed = reconcile(**window, scope=DISPUTES, fix=True)

    # then
    missing = found_only.discrepancies.get()
    assert (missing.kind, missing.gateway_reference, missing.payment_id, missing.dispute_id) == (
        K.DISPUTE_MISSING_HERE,
        reference,
        payment_id,
        None,
    )
    assert (missing.theirs["status"], missing.theirs["amount"], missing.theirs["currency"]) == (
        "needs_response",
        2000,
        "usd",
    )
    recorded = Dispute.objects.get(gateway_reference=reference)
    assert (recorded.payment_id, recorded.status, recorded.amount) == (payment_id, "needs_response", 2000)
    assert _found(fixed) == {(K.DISPUTE_MISSING_HERE, reference, recorded.pk, "fixed")}
    assert fixed.discrepancies.get().note == f"Recorded here as {recorded.public_id}."
    assert (fixed.status, fixed.disputes_matched) == (RunStatus.CLEAN, 1)
    assert Event.objects.filter(subject_id=recorded.public_id, type="dispute.created").count() == 1


def test_a_dispute_only_here_is_missing_at_the_gateway(make_disputes, window):
    # given: a row of ours with a reference nobody made at the gateway
    like = make_disputes(1)[0]
    fake = Dispute.objects.create(
        client=like.client,
        payment=like.payment,
        amount=700,
        currency="usd",
        status="needs_response",
        gateway_name="simulator",
        gateway_reference="du_only_here",
        gateway_created_at=timezone.now(),
    )

    # when
    run = reconcile(**window, scope=DISPUTES, fix=True)

    # then: for staff, whatever `fix`
    found = run.discrepancies.get()
    assert (found.kind, found.dispute_id, found.gateway_reference, found.state) == (
        K.DISPUTE_MISSING_AT_GATEWAY,
        fake.pk,
        "du_only_here",
        DiscrepancyState.OPEN,
    )
    assert found.ours == {"id": fake.public_id, "status": "needs_response", "amount": 700, "currency": "usd"}
    assert (run.our_disputes, run.gateway_disputes, run.disputes_matched) == (2, 1, 1)


def test_a_dispute_outside_the_window_is_not_compared(make_disputes, window):
    like = make_disputes(1)[0]
    Dispute.objects.create(
        client=like.client,
        payment=like.payment,
        amount=700,
        currency="usd",
        status="needs_response",
        gateway_name="simulator",
        gateway_reference="du_last_week",
        gateway_created_at=timezone.now() - timedelta(days=7),
    )

    run = reconcile(**window, scope=DISPUTES)

    assert (run.status, run.our_disputes, run.disputes_matched) == (RunStatus.CLEAN, 1, 1)


def test_a_tampered_amount_is_found_and_left_for_staff(make_disputes, window):
    dispute = make_disputes(1)[0]
    Dispute.objects.filter(pk=dispute.pk).update(amount=1500)

    run = reconcile(**window, scope=DISPUTES, fix=True)

    found = run.discrepancies.get()
    assert (found.kind, found.state, found.dispute_id) == (K.DISPUTE_AMOUNT_MISMATCH, "open", dispute.pk)
    assert (found.ours, found.theirs) == ({"amount": 1500, "currency": "usd"}, {"amount": 2000, "currency": "usd"})
    assert found.note == "Not fixed: the statuses agree; the amount is for staff."
    assert Dispute.objects.get(pk=dispute.pk).amount == 1500


# --- cost -------------------------------------------------------------------------------------------------
def _queries(window, **options) -> int:
    with CaptureQueriesContext(connection) as captured:
        run = reconcile(**window, scope=DISPUTES, **options)
    assert run.status == RunStatus.UNRESOLVED
    return len(captured)


def test_queries_do_not_grow_with_the_number_of_disputes(make_disputes, window):
    # given a few disputes, each with a difference of each kind's side: one lost here, one tampered
    first = make_disputes(3)
    Dispute.objects.filter(pk=first[0].pk).update(status="won")
    Dispute.objects.filter(pk=first[1].pk).delete()
    few = _queries(window)

    # when there are three times as many
    more = make_disputes(6)
    Dispute.objects.filter(pk__in=[more[0].pk, more[1].pk]).update(status="won")
    Dispute.objects.filter(pk__in=[more[2].pk, more[3].pk]).delete()
    many = _queries(window)

    # then the same queries (one batch of 500 either way); and a batch more costs at most its three queries
    # (ours by reference, the payments of those missing here, the discrepancies' insert)
    assert many == few
    assert Discrepancy.objects.filter(run__scope=DISPUTES).count() == 2 + 6
    assert few < _queries(window, dispute_batch_size=3) <= few + 2 * 3  # three batches of three


# --- the command ------------------------------------------------------------------------------------------
def test_reconcile_only_disputes_prints_the_pass_and_exits_1_with_open_discrepancies(make_disputes):
    dispute = make_disputes(1)[0]
    Dispute.objects.filter(pk=dispute.pk).update(status="won")
    today = timezone.now().date().isoformat()
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--since", today, "--only", "disputes", "--quiet", stdout=out)

    text = out.getvalue()
    run = ReconciliationRun.objects.get()
    assert raised.value.returncode == 1
    assert (run.scope, run.status) == (DISPUTES, RunStatus.UNRESOLVED)
    assert f"Run {run.pk} (simulator) disputes" in text
    assert "1 at the gateway, 1 ours, 0 matched" in text
    assert f"{'Dispute status differs':<26}{1:>8}{0:>8}{1:>8}" in text
    assert "Subscription" not in text
