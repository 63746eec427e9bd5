"""Reconciling subscriptions and their invoices with the gateway's (simulator).

Subscriptions are made through the API, so the gateway holds the true record; a drift on our side is an
update() or delete() behind the services' back, and that is what reconciling must find (and, with `fix`, repair
through the subscriptions services).
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.models import Event
from payments.models import Payment
from reconciliation.models import Discrepancy, DiscrepancyState, ReconciliationRun, RunScope, RunStatus
from reconciliation.services import reconcile
from subscriptions.models import Invoice, Subscription, SubscriptionStatusChange
from tests.accounts.factories import StaffUserFactory
from tests.subscriptions.conftest import (  # noqa: F401 - the subscriptions API and its billing clock, shared
    DAY,
    _simulator_gateway,
    advance,
    prices,
    subscribe,
    webhook_secret,
)

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = RunScope.SUBSCRIPTIONS
TODAY = datetime.now(tz=UTC).date().isoformat()


@pytest.fixture
def make_subscriptions(subscribe):  # noqa: F811 - the fixture imported above
    """Make `count` subscriptions through the API, one customer each (charged at once: one paid invoice each)."""

    def make(count: int, prefix: str = "cus_sub", **body) -> list[Subscription]:
        made = []
        for n in range(count):
            response = subscribe(customer_id=f"{prefix}_{n}", **body)
            assert response.status_code == 201, response.json()
            made.append(Subscription.objects.get(public_id=response.json()["id"]))
        return made

    return make


@pytest.fixture
def renew(advance):  # noqa: F811 - the fixture imported above
    """Move the API client's billing clock forward by `days` (the webhooks delivered and applied)."""
    return lambda days: advance(days * DAY)


def _found(run: ReconciliationRun) -> set[tuple[str, str, int | None, int | None, str]]:
    return {(d.kind, d.gateway_reference, d.subscription_id, d.invoice_id, d.state) for d in run.discrepancies.all()}


def _invoice(subscription: Subscription) -> Invoice:
    return Invoice.objects.get(subscription=subscription)


def _delete_here(subscription: Subscription) -> None:
    """Lose a subscription here (its invoices with it), as if its webhooks had never arrived."""
    Invoice.objects.filter(subscription=subscription).delete()
    Subscription.objects.filter(pk=subscription.pk).delete()


def _only_here(like: Subscription, reference: str) -> Subscription:
    """A subscription row of ours the gateway does not know (a gateway reference nobody made there)."""
    return Subscription.objects.create(
        client=like.client,
        customer=like.customer,
        price=like.price,
        status="active",
        current_period_start=like.current_period_start,
        current_period_end=like.current_period_end,
        gateway=like.gateway,
        gateway_reference=reference,
        gateway_created_at=like.gateway_created_at,
    )


# --- finding ----------------------------------------------------------------------------------------------
def test_in_sync_nothing_is_found(make_subscriptions, renew, window):
    make_subscriptions(2)
    trial = make_subscriptions(1, prefix="cus_trial", trial_days=14)[0]
    renew(32)  # the first two renew (a second invoice each); the trial ends and is charged
    assert Invoice.objects.count() == 5

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    assert (run.scope, run.status, run.discrepancies_found) == (SUBSCRIPTIONS, RunStatus.CLEAN, 0)
    assert (run.gateway_subscriptions, run.our_subscriptions, run.subscriptions_matched) == (3, 3, 3)
    assert (run.gateway_invoices, run.our_invoices, run.invoices_matched) == (5, 5, 5)
    assert Subscription.objects.get(pk=trial.pk).status == "active"
    assert (run.gateway_records, run.customers_compared) == (0, 0)  # the other passes did not run


def test_every_pass_runs_by_default_and_an_invoices_payment_matches_its_intent(make_subscriptions, window):
    make_subscriptions(2)

    run = reconcile(**window)

    assert (run.scope, run.status, run.discrepancies_found) == (RunScope.ALL, RunStatus.CLEAN, 0)
    assert (run.gateway_records, run.matched) == (2, 2)  # each invoice's charge, a pay_ payment
    assert (run.gateway_subscriptions, run.subscriptions_matched, run.invoices_matched) == (2, 2, 2)


def test_a_subscription_whose_status_drifted_is_found_and_left_alone(make_subscriptions, window):
    drifted, _ = make_subscriptions(2)
    Subscription.objects.filter(pk=drifted.pk).update(status="past_due")

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    found = run.discrepancies.get()
    assert (found.kind, found.subscription_id, found.gateway_reference, found.state) == (
        "subscription_status_mismatch",
        drifted.pk,
        drifted.gateway_reference,
        "open",
    )
    assert (found.ours, found.theirs) == ({"status": "past_due"}, {"status": "active"})
    assert (run.status, run.subscriptions_matched, run.invoices_matched) == (RunStatus.UNRESOLVED, 1, 2)
    assert Subscription.objects.get(pk=drifted.pk).status == "past_due"  # nothing changed without fix


def test_a_subscription_whose_terms_drifted_is_found_with_the_differing_terms_only(make_subscriptions, window):
    drifted = make_subscriptions(1)[0]
    later = drifted.current_period_end + timedelta(days=1)
    Subscription.objects.filter(pk=drifted.pk).update(quantity=3, cancel_at_period_end=True, current_period_end=later)

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    found = run.discrepancies.get()
    assert found.kind == "subscription_fields_mismatch"
    assert found.ours == {"quantity": 3, "current_period_end": later.isoformat(), "cancel_at_period_end": True}
    assert found.theirs == {
        "quantity": 1,
        "current_period_end": drifted.current_period_end.isoformat(),
        "cancel_at_period_end": False,
    }


def test_an_invoice_whose_amounts_drifted_is_found(make_subscriptions, window):
    subscription = make_subscriptions(1)[0]
    invoice = _invoice(subscription)
    Invoice.objects.filter(pk=invoice.pk).update(amount_paid=500, amount_remaining=400)

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    found = run.discrepancies.get()
    assert (found.kind, found.subscription_id, found.invoice_id, found.gateway_reference) == (
        "invoice_amount_mismatch",
        subscription.pk,
        invoice.pk,
        invoice.gateway_reference,
    )
    assert found.ours == {"currency": "usd", "amount_paid": 500, "amount_remaining": 400}
    assert found.theirs == {"currency": "usd", "amount_paid": 900, "amount_remaining": 0}
    assert (run.subscriptions_matched, run.invoices_matched) == (1, 0)


def test_an_invoice_whose_status_drifted_is_found_once(make_subscriptions, window):
    invoice = _invoice(make_subscriptions(1)[0])
    Invoice.objects.filter(pk=invoice.pk).update(status="open", amount_paid=0, amount_remaining=900)

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    found = run.discrepancies.get()  # the status explains the amounts: one discrepancy
    assert (found.kind, found.ours, found.theirs) == ("invoice_status_mismatch", {"status": "open"}, {"status": "paid"})


def test_what_is_only_at_the_gateway_is_missing_here(make_subscriptions, window):
    lost, kept = make_subscriptions(2)
    lost_reference, lost_invoice = lost.gateway_reference, _invoice(lost).gateway_reference
    kept_invoice = _invoice(kept)
    _delete_here(lost)
    Invoice.objects.filter(pk=kept_invoice.pk).delete()

    run = reconcile(**window, scope=SUBSCRIPTIONS)

    assert _found(run) == {
        ("subscription_missing_here", lost_reference, None, None, "open"),
        ("invoice_missing_here", kept_invoice.gateway_reference, kept.pk, None, "open"),
    }  # the lost subscription's invoice is its own discrepancy's (recorded with it by a fix)
    missing = run.discrepancies.get(kind="subscription_missing_here")
    assert (missing.theirs["status"], missing.theirs["price"], missing.theirs["invoices"]) == (
        "active",
        "price_basic_monthly",
        1,
    )
    assert run.discrepancies.get(kind="invoice_missing_here").theirs == {
        "status": "paid",
        "subscription": kept.gateway_reference,
        "currency": "usd",
        "amount_due": 900,
        "amount_paid": 900,
        "amount_remaining": 0,
    }
    assert (run.gateway_subscriptions, run.our_subscriptions, run.gateway_invoices, run.our_invoices) == (2, 1, 2, 0)
    assert not Invoice.objects.filter(gateway_reference=lost_invoice).exists()


def test_what_is_only_here_is_missing_at_the_gateway(make_subscriptions, window):
    kept = make_subscriptions(1)[0]
    stray = _only_here(kept, "sub_only_here")
    extra = Invoice.objects.create(
        client=kept.client,
        subscription=kept,
        customer=kept.customer,
        status="paid",
        currency="usd",
        amount_due=900,
        amount_paid=900,
        gateway=kept.gateway,
        gateway_reference="in_only_here",
    )
    outside = _only_here(kept, "sub_outside_the_window")
    Subscription.objects.filter(pk=outside.pk).update(gateway_created_at=window["since"] - timedelta(days=2))

    run = reconcile(**window, scope=SUBSCRIPTIONS, fix=True)

    assert _found(run) == {
        ("subscription_missing_at_gateway", "sub_only_here", stray.pk, None, "open"),
        ("invoice_missing_at_gateway", "in_only_here", kept.pk, extra.pk, "open"),
    }  # staff decide; the one created outside the window is not this run's
    assert run.discrepancies.get(kind="subscription_missing_at_gateway").ours["id"] == stray.public_id
    assert run.discrepancies.get(kind="invoice_missing_at_gateway").ours == {
        "id": extra.public_id,
        "status": "paid",
        "currency": "usd",
        "amount_due": 900,
        "amount_paid": 900,
        "amount_remaining": 0,
    }
    assert (run.status, run.discrepancies_fixed, run.our_subscriptions, run.our_invoices) == (
        RunStatus.UNRESOLVED,
        0,
        2,
        2,
    )


# --- fixing -----------------------------------------------------------------------------------------------
def test_fix_applies_the_gateways_truth_through_the_services_and_the_next_run_is_clean(make_subscriptions, window):
    behind, amounts, lost, unpaid = make_subscriptions(4)
    Subscription.objects.filter(pk=behind.pk).update(status="past_due")
    Invoice.objects.filter(pk=_invoice(amounts).pk).update(amount_paid=100, amount_remaining=800)
    lost_reference, lost_payment = lost.gateway_reference, _invoice(lost).payment_id
    _delete_here(lost)
    unpaid_invoice = _invoice(unpaid)
    Invoice.objects.filter(pk=unpaid_invoice.pk).update(status="open", amount_paid=0, amount_remaining=900)

    run = reconcile(**window, scope=SUBSCRIPTIONS, fix=True)

    assert (run.discrepancies_found, run.discrepancies_fixed, run.status) == (4, 4, RunStatus.CLEAN)
    assert set(run.discrepancies.values_list("state", flat=True)) == {DiscrepancyState.FIXED}
    # the status moved through the state machine: its history row and its event
    assert Subscription.objects.get(pk=behind.pk).status == "active"
    assert list(SubscriptionStatusChange.objects.filter(subscription=behind).values_list("to_status", "source"))[
        -1
    ] == ("active", "worker")
    assert Event.objects.filter(subject_id=behind.public_id, type="subscription.updated").exists()
    assert (Invoice.objects.filter(pk=_invoice(amounts).pk).values_list("amount_paid", "amount_remaining").get()) == (
        900,
        0,
    )
    assert Invoice.objects.get(pk=unpaid_invoice.pk).status == "paid"
    assert Event.objects.filter(subject_id=unpaid_invoice.public_id, type="invoice.paid").count() == 2
    # the lost one is recorded again, with its invoice, linked to the payment we still hold
    recorded = Subscription.objects.get(gateway_reference=lost_reference)
    assert (recorded.status, recorded.latest_invoice_id) == ("active", _invoice(recorded).pk)
    assert _invoice(recorded).payment_id == lost_payment
    missing = run.discrepancies.get(kind="subscription_missing_here")
    assert (missing.subscription_id, missing.note) == (recorded.pk, f"Recorded here as {recorded.public_id}.")
    assert Event.objects.filter(subject_id=recorded.public_id, type="subscription.created").exists()
    assert Payment.objects.count() == 4  # no charge recorded twice

    again = reconcile(**window, scope=SUBSCRIPTIONS)

    assert (again.status, again.discrepancies_found, again.subscriptions_matched, again.invoices_matched) == (
        RunStatus.CLEAN,
        0,
        4,
        4,
    )


def test_fix_never_moves_a_subscription_back(make_subscriptions, window):
    ended = make_subscriptions(1)[0]
    Subscription.objects.filter(pk=ended.pk).update(status="canceled")
    events = Event.objects.count()

    run = reconcile(**window, scope=SUBSCRIPTIONS, fix=True)

    found = run.discrepancies.get()
    assert (found.kind, found.state, run.status) == ("subscription_status_mismatch", "open", RunStatus.UNRESOLVED)
    assert found.note == "Not fixed: ours (canceled) cannot move to what the gateway shows."
    assert Subscription.objects.get(pk=ended.pk).status == "canceled"
    assert Event.objects.count() == events
    assert not SubscriptionStatusChange.objects.filter(subscription=ended, source="worker").exists()


# --- batching ---------------------------------------------------------------------------------------------
def _queries(window, **options) -> tuple[int, ReconciliationRun]:
    with CaptureQueriesContext(connection) as captured:
        run = reconcile(**window, scope=SUBSCRIPTIONS, **options)
    return len(captured), run


def test_queries_are_constant_whatever_the_number_of_subscriptions_and_invoices(make_subscriptions, renew, window):
    make_subscriptions(3, prefix="cus_few")
    few, run = _queries(window)
    assert (run.subscriptions_matched, run.invoices_matched, run.status) == (3, 3, RunStatus.CLEAN)

    make_subscriptions(9, prefix="cus_more")
    renew(32)  # a second invoice each
    many, run = _queries(window)
    assert (run.subscriptions_matched, run.invoices_matched, run.status) == (12, 24, RunStatus.CLEAN)

    assert many == few
    assert few <= 6  # the run (insert, save), counting ours, the batch's subscriptions and invoices, ours streamed

    # in batches of 5 (3 batches) instead of 12 (1): two queries per batch
    by_five, _ = _queries(window, subscription_batch_size=5)
    assert by_five == many + (3 - 1) * 2


def test_discrepancies_of_a_batch_are_written_at_once(make_subscriptions, window):
    made = make_subscriptions(3)
    clean, _ = _queries(window)
    Invoice.objects.filter(subscription__in=made).update(amount_due=1700)

    drifted, run = _queries(window)

    assert run.discrepancies_found == 3
    assert drifted == clean + 1  # one bulk insert for the batch


# --- the command and the back office ----------------------------------------------------------------------
def test_the_command_runs_only_the_subscriptions_pass_and_exits_one_while_open(make_subscriptions):
    drifted = make_subscriptions(2)[0]
    Invoice.objects.filter(pk=_invoice(drifted).pk).update(amount_due=1700)
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--since", TODAY, "--only", "subscriptions", stdout=out)

    run = ReconciliationRun.objects.get()
    assert raised.value.returncode == 1
    assert str(raised.value) == f"Run {run.pk}: 1 discrepancies left open."
    output = out.getvalue()
    assert "2 subscriptions compared (of about 2)" in output  # not a terminal: plain progress lines
    assert "gateway records" not in output  # the other passes did not run
    assert "saved payment methods" not in output
    assert (
        f"subscriptions {TODAY} 00:00 … {(datetime.now(tz=UTC).date() + timedelta(days=1)).isoformat()} 00:00 UTC: "
        "2 at the gateway, 2 ours, 2 matched; their invoices: 2 at the gateway, 2 ours, 1 matched, "
    ) in output
    assert f"{'Invoice amounts differ':<26}{1:>8}{0:>8}{1:>8}" in output
    assert "Amount differs" not in output


def test_the_command_fixes_and_runs_every_pass_by_default(make_subscriptions):
    drifted = make_subscriptions(1)[0]
    Subscription.objects.filter(pk=drifted.pk).update(status="past_due")
    out = StringIO()

    call_command("reconcile", "--since", TODAY, "--fix", "--quiet", stdout=out)

    run = ReconciliationRun.objects.get()
    assert (run.scope, run.status) == (RunScope.ALL, RunStatus.CLEAN)
    output = out.getvalue()
    assert "1 gateway records, 1 ours, 1 matched" in output
    assert "their invoices: 1 at the gateway, 1 ours, 1 matched" in output
    assert f"{'Subscription status':<26}{1:>8}{1:>8}{0:>8}" in output
    assert Subscription.objects.get(pk=drifted.pk).status == "active"


def test_the_admin_shows_subscription_discrepancies_with_links_and_money(client, make_subscriptions, window):
    client.force_login(StaffUserFactory(superuser=True))
    subscription = make_subscriptions(1)[0]
    invoice = _invoice(subscription)
    Invoice.objects.filter(pk=invoice.pk).update(amount_paid=500, amount_remaining=400)
    found = reconcile(**window, scope=SUBSCRIPTIONS).discrepancies.get()

    listed = client.get("/admin/reconciliation/discrepancy/", {"kind__exact": "invoice_amount_mismatch"})
    searched = client.get("/admin/reconciliation/discrepancy/", {"q": subscription.public_id})

    assert listed.status_code == 200
    page = listed.content.decode()
    assert f'<a href="/admin/subscriptions/subscription/{subscription.pk}/change/">{subscription.public_id}</a>' in page
    assert f'<a href="/admin/subscriptions/invoice/{invoice.pk}/change/">{invoice.public_id}</a>' in page
    assert "amount_paid: $5.00, amount_remaining: $4.00" in page
    assert "amount_paid: $9.00, amount_remaining: $0.00" in page
    assert list(searched.context["cl"].result_list) == [found]
    assert Discrepancy.objects.count() == 1
