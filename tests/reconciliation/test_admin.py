"""The reconciliation back office: runs with counts, discrepancies filtered, resolved or accepted with a reason."""

import pytest

from audit.models import StaffAction
from payments.models import Payment
from reconciliation.models import Discrepancy, DiscrepancyState, RunStatus
from reconciliation.services import reconcile
from tests.accounts.factories import StaffUserFactory

pytestmark = pytest.mark.django_db

DISCREPANCIES = "/admin/reconciliation/discrepancy/"
RUNS = "/admin/reconciliation/reconciliationrun/"


@pytest.fixture
def staff(client):
    user = StaffUserFactory(superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def run(pay, window):
    """A run with two open discrepancies: an amount and a currency."""
    amount = pay(amount=1999)
    Payment.objects.filter(pk=amount.pk).update(amount=2500)
    currency = pay(amount=500, currency="jpy")
    Payment.objects.filter(pk=currency.pk).update(currency="usd")
    return reconcile(**window)


def test_runs_are_listed_with_their_counts(client, staff, run):
    response = client.get(RUNS)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'?run__id__exact={run.pk}&amp;state__exact=open">2</a>' in html
    assert client.get(f"{RUNS}add/").status_code == 403


def test_discrepancies_are_filtered_by_kind_and_state_with_money_formatted(client, staff, run):
    amount = run.discrepancies.get(kind="amount")

    response = client.get(DISCREPANCIES, {"kind__exact": "amount", "state__exact": "open", "run__id__exact": run.pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert amount.gateway_reference in html
    assert "amount: $25.00" in html
    assert "amount: $19.99" in html
    assert run.discrepancies.get(kind="currency").gateway_reference not in html


def test_search_by_payment_id(client, staff, run):
    currency = run.discrepancies.get(kind="currency")

    response = client.get(DISCREPANCIES, {"q": currency.payment.public_id})

    html = response.content.decode()
    assert currency.gateway_reference in html
    assert run.discrepancies.get(kind="amount").gateway_reference not in html


def test_resolve_with_a_reason_closes_it_and_the_run_once_nothing_is_open(client, staff, run):
    amount, currency = run.discrepancies.get(kind="amount"), run.discrepancies.get(kind="currency")

    client.post(
        DISCREPANCIES,
        {"action": "resolve", "_selected_action": [amount.pk], "reason": "Corrected the order total in the shop"},
    )
    client.post(
        DISCREPANCIES, {"action": "mark_accepted", "_selected_action": [currency.pk], "reason": "Known test payment"}
    )

    amount.refresh_from_db()
    currency.refresh_from_db()
    run.refresh_from_db()
    assert (amount.state, amount.resolved_by, amount.note) == (
        DiscrepancyState.RESOLVED,
        staff,
        "Corrected the order total in the shop",
    )
    assert amount.resolved_at is not None
    assert (currency.state, currency.resolved_by, currency.note) == (
        DiscrepancyState.ACCEPTED,
        staff,
        "Known test payment",
    )
    assert run.status == RunStatus.CLEAN
    actions = StaffAction.objects.order_by("id")
    assert [(a.actor, a.action, a.object_type, a.object_id, a.reason, a.before, a.after) for a in actions] == [
        (
            staff,
            "discrepancy_resolve",
            "discrepancy",
            str(amount.pk),
            "Corrected the order total in the shop",
            {"state": "open"},
            {"state": "resolved"},
        ),
        (
            staff,
            "discrepancy_accept",
            "discrepancy",
            str(currency.pk),
            "Known test payment",
            {"state": "open"},
            {"state": "accepted"},
        ),
    ]


def test_resolve_without_a_reason_changes_nothing(client, staff, run):
    amount = run.discrepancies.get(kind="amount")

    response = client.post(
        DISCREPANCIES, {"action": "resolve", "_selected_action": [amount.pk], "reason": "  "}, follow=True
    )

    assert "Give a reason" in response.content.decode()
    assert Discrepancy.objects.filter(state=DiscrepancyState.OPEN).count() == 2
    assert Discrepancy.objects.get(pk=amount.pk).resolved_by is None
    assert StaffAction.objects.count() == 0
