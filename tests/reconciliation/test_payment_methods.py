"""Reconciling customers' saved payment methods with the gateway's attached cards (simulator, and localstripe).

Cards are saved through the customers services, so the gateway holds the true record; a change made "in the
Dashboard" is a call on the gateway itself with no webhook, and a drift on our side is an update() behind the
services' back: that is what reconciling must find.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from customers.services import payment_method_attach
from events.models import Event
from gateways.base import PaymentMethodResult, Permanent
from gateways.simulator import SimulatorGateway
from gateways.stripe import StripeGateway
from reconciliation.models import Discrepancy, DiscrepancyState, ReconciliationRun, RunScope, RunStatus
from reconciliation.services import reconcile
from tests.accounts.factories import StaffUserFactory
from tests.gateways.conftest import API_KEY

pytestmark = pytest.mark.django_db

TODAY = datetime.now(tz=UTC).date().isoformat()
METHODS = RunScope.PAYMENT_METHODS
DETACHED = PaymentMethodStatus.DETACHED


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


def _save(shop, customer_id: str, *tokens: str) -> list[PaymentMethod]:
    """Save test cards to a customer (made here and at the gateway) through the customers service."""
    return [payment_method_attach(client=shop, customer_id=customer_id, payment_method=token)[1] for token in tokens]


def _customer(customer_id: str) -> Customer:
    return Customer.objects.get(customer_id=customer_id)


def _gateway_customer(customer_id: str) -> str:
    return CustomerGatewayToken.objects.get(customer__customer_id=customer_id).reference


def _found(run: ReconciliationRun) -> set[tuple[str, str, int | None, int | None, str]]:
    return {(d.kind, d.gateway_reference, d.payment_method_id, d.customer_id, d.state) for d in run.discrepancies.all()}


@pytest.fixture
def drift(shop, simulator):
    """A customer in sync, and one with each kind of difference.

    `gone`: detached in the Dashboard (no webhook) — missing at the gateway; `detached`: detached here behind
    the services' back while still attached there; `dashboard`: a card attached in the Dashboard — missing here.
    """
    _save(shop, "cus_sync", "pm_card_visa", "pm_card_mastercard")
    gone, kept, detached = _save(shop, "cus_drift", "pm_card_visa", "pm_card_mastercard", "pm_card_amex")
    simulator.detach_payment_method(payment_method=gone.gateway_reference, idempotency_key="dashboard:detach")
    PaymentMethod.objects.filter(pk=detached.pk).update(status=DETACHED, detached_at=timezone.now())
    dashboard = simulator.attach_payment_method(
        payment_method="pm_card_discover",
        customer_reference=_gateway_customer("cus_drift"),
        idempotency_key="dashboard:attach",
    )
    return {
        "customer": _customer("cus_drift"),
        "gone": gone,
        "kept": kept,
        "detached": detached,
        "dashboard": dashboard,
    }


def test_in_sync_nothing_is_found(shop, window):
    _save(shop, "cus_1", "pm_card_visa", "pm_card_amex")
    _save(shop, "cus_2", "pm_card_mastercard")

    run = reconcile(**window, scope=METHODS)

    assert (run.scope, run.status, run.discrepancies_found) == (METHODS, RunStatus.CLEAN, 0)
    assert (run.customers_compared, run.gateway_payment_methods, run.our_payment_methods) == (2, 3, 3)
    assert run.payment_methods_matched == 3
    assert (run.gateway_records, run.our_records) == (0, 0)  # the payments pass did not run


def test_every_kind_of_difference_is_found_once(drift, window):
    run = reconcile(**window, scope=METHODS)

    d, customer = drift, drift["customer"].pk
    assert _found(run) == {
        ("method_missing_here", d["dashboard"].reference, None, customer, "open"),
        ("method_missing_at_gateway", d["gone"].gateway_reference, d["gone"].pk, customer, "open"),
        ("method_detached_here", d["detached"].gateway_reference, d["detached"].pk, customer, "open"),
    }
    assert (run.status, run.discrepancies_found, run.discrepancies_fixed) == (RunStatus.UNRESOLVED, 3, 0)
    # two customers; the gateway lists 2 + (kept, detached, dashboard); ours active: 2 + (gone, kept)
    assert (run.customers_compared, run.gateway_payment_methods, run.our_payment_methods) == (2, 5, 4)
    assert run.payment_methods_matched == 3
    # nothing was changed without --fix
    assert PaymentMethod.objects.get(pk=d["gone"].pk).status == PaymentMethodStatus.ACTIVE
    assert not PaymentMethod.objects.filter(gateway_reference=d["dashboard"].reference).exists()


def test_the_values_of_both_sides_are_recorded_without_card_data(drift, window):
    run = reconcile(**window, scope=METHODS)

    missing_here = run.discrepancies.get(kind="method_missing_here")
    card = drift["dashboard"].card
    assert card is not None
    assert missing_here.ours == {}
    assert missing_here.theirs == {
        "reference": drift["dashboard"].reference,
        "customer": _gateway_customer("cus_drift"),
        "brand": "discover",
        "last4": "1117",
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
    }
    gone = run.discrepancies.get(kind="method_missing_at_gateway")
    assert gone.ours == {
        "id": drift["gone"].public_id,
        "status": "active",
        "brand": "visa",
        "last4": "4242",
        "exp_month": drift["gone"].exp_month,
        "exp_year": drift["gone"].exp_year,
    }
    assert gone.theirs == {"customer": _gateway_customer("cus_drift")}
    assert run.discrepancies.get(kind="method_detached_here").ours["status"] == "detached"


def test_fix_saves_the_dashboards_card_and_detaches_the_gone_one_through_the_services(drift, window):
    # when
    run = reconcile(**window, scope=METHODS, fix=True)

    # then: the card attached in the Dashboard is saved here, with its event
    saved = PaymentMethod.objects.get(gateway_reference=drift["dashboard"].reference)
    assert (saved.customer_id, saved.status, saved.brand, saved.last4) == (
        drift["customer"].pk,
        "active",
        "discover",
        "1117",
    )
    missing_here = run.discrepancies.get(kind="method_missing_here")
    assert (missing_here.state, missing_here.payment_method_id) == (DiscrepancyState.FIXED, saved.pk)
    assert missing_here.note == f"Saved here as {saved.public_id}."
    assert Event.objects.filter(type="payment_method.attached", subject_id=saved.public_id).count() == 1
    # and: the one detached in the Dashboard is detached here, with its event
    gone = PaymentMethod.objects.get(pk=drift["gone"].pk)
    assert gone.status == DETACHED
    assert gone.detached_at is not None
    assert run.discrepancies.get(kind="method_missing_at_gateway").state == DiscrepancyState.FIXED
    assert Event.objects.filter(type="payment_method.detached", subject_id=gone.public_id).count() == 1
    # and: a method detached here but still attached there is for staff (a detach here is final)
    assert run.discrepancies.get(kind="method_detached_here").state == DiscrepancyState.OPEN
    assert (run.discrepancies_found, run.discrepancies_fixed, run.status, run.fix) == (3, 2, RunStatus.UNRESOLVED, True)

    # when: reconciling again
    again = reconcile(**window, scope=METHODS)

    # then: only the staff's one is left
    assert [d.kind for d in again.discrepancies.all()] == ["method_detached_here"]
    assert again.payment_methods_matched == 4  # 2 in sync + kept + the saved one


class _StaleListing(SimulatorGateway):
    """The simulator, but its listing of one customer misses their cards (a retrieve still tells the truth)."""

    def __init__(self, stale_customer: str) -> None:
        super().__init__()
        self.stale_customer = stale_customer

    def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
        if customer_reference == self.stale_customer:
            return iter(())
        return super().list_payment_methods(customer_reference=customer_reference)


def test_fix_detaches_nothing_the_gateway_still_shows_attached(shop, window):
    (card,) = _save(shop, "cus_1", "pm_card_visa")

    run = reconcile(**window, scope=METHODS, fix=True, gateway=_StaleListing(_gateway_customer("cus_1")))

    found = run.discrepancies.get()
    assert (found.kind, found.state, found.payment_method_id) == ("method_missing_at_gateway", "open", card.pk)
    assert found.note == "Not fixed: the gateway shows it attached to this customer."
    assert PaymentMethod.objects.get(pk=card.pk).status == PaymentMethodStatus.ACTIVE


def test_a_customer_the_gateway_does_not_know_has_its_methods_missing_there_but_not_detached(shop, window):
    (card,) = _save(shop, "cus_1", "pm_card_visa")
    CustomerGatewayToken.objects.filter(customer__customer_id="cus_1").update(reference="cus_sim_unknown")

    run = reconcile(**window, scope=METHODS, fix=True)

    found = run.discrepancies.get()
    assert (found.kind, found.state, found.gateway_reference) == (
        "method_missing_at_gateway",
        "open",
        card.gateway_reference,
    )
    assert found.note == "Not fixed: the gateway shows it attached to another customer."
    assert PaymentMethod.objects.get(pk=card.pk).status == PaymentMethodStatus.ACTIVE


class _RefusingGateway(SimulatorGateway):
    def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
        raise Permanent("Stripe rejected the API key.", code="authentication_error")


def test_a_listing_the_gateway_refuses_fails_the_run_instead_of_reporting_every_card_missing(shop, window):
    _save(shop, "cus_1", "pm_card_visa")

    with pytest.raises(Permanent):
        reconcile(**window, scope=METHODS, fix=True, gateway=_RefusingGateway())

    run = ReconciliationRun.objects.get()
    assert (run.status, run.discrepancies_found) == (RunStatus.FAILED, 0)
    assert run.error == "Permanent: Stripe rejected the API key."
    assert PaymentMethod.objects.get().status == PaymentMethodStatus.ACTIVE


def test_both_passes_run_by_default_in_one_run(drift, pay, window):
    pay()  # a payment in sync

    run = reconcile(**window)

    assert run.scope == RunScope.ALL
    assert (run.gateway_records, run.our_records, run.matched) == (1, 1, 1)
    assert (run.customers_compared, run.discrepancies_found) == (2, 3)


# --- batching -------------------------------------------------------------------------------------------
def _customers_with_cards(shop, count: int, prefix: str) -> None:
    for n in range(count):
        _save(shop, f"cus_{prefix}_{n}", "pm_card_visa", "pm_card_mastercard", "pm_card_amex")


def _queries(window, **options) -> tuple[int, ReconciliationRun]:
    with CaptureQueriesContext(connection) as captured:
        run = reconcile(**window, scope=METHODS, **options)
    return len(captured), run


def test_queries_are_constant_per_batch_of_customers_whatever_their_number_of_methods(shop, window):
    _customers_with_cards(shop, 1, "one")
    one, run = _queries(window)
    assert (run.customers_compared, run.payment_methods_matched, run.status) == (1, 3, RunStatus.CLEAN)

    _customers_with_cards(shop, 49, "many")
    fifty, run = _queries(window)
    assert (run.customers_compared, run.payment_methods_matched, run.status) == (50, 150, RunStatus.CLEAN)

    assert fifty == one
    assert one <= 5  # the run (insert, save), counting our gateway customers, a page of them, their methods

    # in batches of 10 customers (5 batches, then an empty page) instead of 25 (2, then an empty page):
    # two queries per batch (a page of customers, their methods)
    by_ten, run = _queries(window, customer_batch_size=10)
    by_twenty_five, _ = _queries(window, customer_batch_size=25)
    assert run.payment_methods_matched == 150
    assert by_ten - by_twenty_five == (5 - 2) * 2


def test_discrepancies_of_a_batch_are_written_at_once(shop, simulator, window):
    _customers_with_cards(shop, 3, "drift")
    for n in range(3):  # every customer gets a card in the Dashboard
        simulator.attach_payment_method(
            payment_method="pm_card_discover",
            customer_reference=_gateway_customer(f"cus_drift_{n}"),
            idempotency_key=f"dashboard:{n}",
        )
    clean, _ = _queries(window, gateway=_without_discover(simulator))

    drifted, run = _queries(window)

    assert run.discrepancies_found == 3
    assert drifted == clean + 1  # one bulk insert for the batch


def _without_discover(simulator: SimulatorGateway):
    """The simulator as it was before the Dashboard's cards (their listing without them)."""

    class Before(SimulatorGateway):
        def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
            for method in simulator.list_payment_methods(customer_reference=customer_reference):
                if method.card is None or method.card.brand != "discover":
                    yield method

    return Before()


# --- the command ----------------------------------------------------------------------------------------
def test_the_command_runs_both_passes_and_reports_each(shop, pay):
    pay()
    _save(shop, "cus_1", "pm_card_visa", "pm_card_amex")
    out = StringIO()

    call_command("reconcile", "--since", TODAY, stdout=out)

    run = ReconciliationRun.objects.get()
    output = out.getvalue()
    assert (run.scope, run.status) == (RunScope.ALL, RunStatus.CLEAN)
    assert "1 gateway records compared (of about 1)" in output
    assert "1 customers compared (of about 1)" in output  # not a terminal: plain progress lines
    assert "1 gateway records, 1 ours, 1 matched" in output
    assert f"Run {run.pk} (simulator) saved payment methods: 1 customers, 2 at the gateway, 2 ours, 2 matched" in output
    assert f"{'Amount differs':<26}{0:>8}{0:>8}{0:>8}" in output
    assert f"{'Method missing here':<26}{0:>8}{0:>8}{0:>8}" in output
    assert f"Run {run.pk}: clean." in output


def test_the_command_runs_only_the_payment_methods_pass_and_exits_one_while_open(drift):
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--only", "payment_methods", "--quiet", stdout=out)

    run = ReconciliationRun.objects.get()
    assert raised.value.returncode == 1
    assert str(raised.value) == f"Run {run.pk}: 3 discrepancies left open."
    assert run.scope == RunScope.PAYMENT_METHODS
    output = out.getvalue()
    assert "compared (of about" not in output  # --quiet
    assert "gateway records" not in output  # the payments pass did not run
    assert "Amount differs" not in output
    assert "saved payment methods: 2 customers, 5 at the gateway, 4 ours, 3 matched" in output
    assert f"{'Method missing here':<26}{1:>8}{0:>8}{1:>8}" in output
    assert f"{'Method missing at gateway':<26}{1:>8}{0:>8}{1:>8}" in output
    assert f"{'Method detached only here':<26}{1:>8}{0:>8}{1:>8}" in output


def test_the_command_fixes_with_fix(drift):
    out = StringIO()

    with pytest.raises(CommandError):  # the one detached here stays open
        call_command("reconcile", "--only", "payment_methods", "--fix", "--quiet", stdout=out)

    output = out.getvalue()
    assert f"{'Method missing here':<26}{1:>8}{1:>8}{0:>8}" in output
    assert f"{'Method missing at gateway':<26}{1:>8}{1:>8}{0:>8}" in output
    assert f"{'total':<26}{3:>8}{2:>8}{1:>8}" in output
    assert PaymentMethod.objects.get(pk=drift["gone"].pk).status == DETACHED


def test_the_command_only_payments_does_not_list_customers(drift):
    out = StringIO()

    call_command("reconcile", "--since", TODAY, "--only", "payments", "--quiet", stdout=out)

    run = ReconciliationRun.objects.get()
    assert (run.scope, run.customers_compared, run.status) == (RunScope.PAYMENTS, 0, RunStatus.CLEAN)
    assert "saved payment methods" not in out.getvalue()
    assert "Method missing here" not in out.getvalue()


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_pass_has_its_bar_on_its_own_line(shop, pay):
    pay()
    _save(shop, "cus_1", "pm_card_visa")
    out = _Terminal()

    call_command("reconcile", "--since", TODAY, stdout=out)

    bars = out.getvalue().split("\n")
    assert bars[0] == f"\r[{'#' * 30}] 1 / ~1 gateway records"
    assert bars[1] == f"\r[{'#' * 30}] 1 / ~1 customers"
    assert bars[2].startswith("Run ")


def test_a_bad_pass_name_is_refused():
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("reconcile", "--only", "refunds", stdout=StringIO())

    assert ReconciliationRun.objects.count() == 0


# --- the back office ------------------------------------------------------------------------------------
def test_the_admin_shows_method_discrepancies_with_their_customer_and_finds_them_by_id(client, drift, window):
    client.force_login(StaffUserFactory(superuser=True))
    run = reconcile(**window, scope=METHODS)
    gone = run.discrepancies.get(kind="method_missing_at_gateway")
    customer = drift["customer"]

    listed = client.get("/admin/reconciliation/discrepancy/", {"kind__exact": "method_missing_at_gateway"})

    html = listed.content.decode()
    assert listed.status_code == 200
    assert f'<a href="/admin/customers/customer/{customer.pk}/change/">{customer.public_id}</a>' in html
    assert drift["gone"].public_id in html
    assert "brand: visa, last4: 4242" in html
    assert drift["dashboard"].reference not in html  # another kind
    found = client.get("/admin/reconciliation/discrepancy/", {"q": drift["gone"].public_id}).content.decode()
    assert f"/admin/reconciliation/discrepancy/{gone.pk}/change/" in found
    others = run.discrepancies.exclude(pk=gone.pk)
    assert not any(f"/admin/reconciliation/discrepancy/{other.pk}/change/" in found for other in others)
    runs = client.get("/admin/reconciliation/reconciliationrun/").content.decode()
    assert "Saved payment methods" in runs  # the run's scope
    assert f'?run__id__exact={run.pk}&amp;state__exact=open">3</a>' in runs


def test_staff_close_a_method_discrepancy_with_a_reason(client, drift, window):
    client.force_login(StaffUserFactory(superuser=True))
    run = reconcile(**window, scope=METHODS)
    detached = run.discrepancies.get(kind="method_detached_here")

    response = client.post(
        "/admin/reconciliation/discrepancy/",
        {"action": "mark_accepted", "_selected_action": [detached.pk], "reason": "Detached in the Dashboard too"},
    )

    assert response.status_code == 302
    detached.refresh_from_db()
    assert (detached.state, detached.note) == (DiscrepancyState.ACCEPTED, "Detached in the Dashboard too")
    assert Discrepancy.objects.filter(run=run, state=DiscrepancyState.OPEN).count() == 2


# --- Stripe (localstripe) -------------------------------------------------------------------------------
@pytest.fixture
def stripe_settings(settings, localstripe):
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    return localstripe


def test_saved_methods_on_stripe_reconcile_and_the_dashboards_changes_are_fixed(storefront, stripe_settings, window):
    # given: cards saved through our API on Stripe (localstripe)
    for token in ("pm_card_visa", "pm_card_amex"):
        response = storefront.post("/api/v1/customers/cus_1/payment_methods/", {"payment_method": token}, format="json")
        assert response.status_code == 201, response.json()
    clean = reconcile(**window, scope=METHODS)
    assert clean.gateway == "stripe"
    assert (clean.status, clean.customers_compared, clean.payment_methods_matched) == (RunStatus.CLEAN, 1, 2)

    # given: in the Dashboard, a card attached and one detached (no webhooks)
    dashboard = StripeGateway(api_key=API_KEY, api_base=stripe_settings.url, timeout=5.0)
    reference = _gateway_customer("cus_1")
    added = dashboard.attach_payment_method(
        payment_method="pm_card_mastercard", customer_reference=reference, idempotency_key="dashboard:attach"
    )
    amex = PaymentMethod.objects.get(brand="amex")
    dashboard.detach_payment_method(payment_method=amex.gateway_reference, idempotency_key="dashboard:detach")

    # when
    run = reconcile(**window, scope=METHODS, fix=True)

    # then
    assert {(d.kind, d.gateway_reference, d.state) for d in run.discrepancies.all()} == {
        ("method_missing_here", added.reference, "fixed"),
        ("method_missing_at_gateway", amex.gateway_reference, "fixed"),
    }
    assert PaymentMethod.objects.get(gateway_reference=added.reference).last4 == "4444"
    assert PaymentMethod.objects.get(pk=amex.pk).status == DETACHED
    listed = storefront.get("/api/v1/customers/cus_1/payment_methods/").json()["results"]
    assert sorted(m["card"]["brand"] for m in listed) == ["mastercard", "visa"]
    assert reconcile(**window, scope=METHODS).status == RunStatus.CLEAN
