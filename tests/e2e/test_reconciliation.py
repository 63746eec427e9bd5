"""Reconciliation back office in a real browser: a finance lead resolves a discrepancy with a reason."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from audit.models import StaffAction
from payments.models import Payment
from payments.services import payment_create
from reconciliation.models import DiscrepancyState, ReconciliationRun
from reconciliation.services import reconcile
from tests.accounts.factories import PASSWORD, UserFactory, totp_code


@pytest.fixture
def lead(make_staff) -> User:
    return make_staff("lead-rita", "finance_lead")


@pytest.fixture
def run(transactional_db) -> ReconciliationRun:
    """A simulator run with two open discrepancies: our amount and our currency drifted from the gateway's.

    The payments are made through the service, so the gateway holds their true records; then our rows are
    altered behind the services' back with update(): the drift reconciling finds.
    """
    shop = UserFactory()

    def pay(amount: int, currency: str) -> Payment:
        return payment_create(
            client=shop,
            amount=amount,
            currency=currency,
            customer_id="cus_recon_e2e",
            payment_method="pm_card_visa",
            confirm=True,
        )

    amount = pay(1999, "usd")
    Payment.objects.filter(pk=amount.pk).update(amount=2500)
    currency = pay(500, "jpy")
    Payment.objects.filter(pk=currency.pk).update(currency="usd")
    now = datetime.now(tz=UTC)
    return reconcile(since=now - timedelta(hours=1), until=now + timedelta(hours=1))


@pytest.mark.django_db(transaction=True)
def test_finance_lead_resolves_a_discrepancy_with_a_reason(live_server, page: Page, lead, run, tmp_path):
    amount = run.discrepancies.get(kind="amount")
    currency = run.discrepancies.get(kind="currency")

    # given a finance lead logged in
    page.set_viewport_size({"width": 1600, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "lead-rita")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code("lead-rita"))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("lead-rita")

    # when they open the run's open discrepancies
    page.goto(f"{live_server.url}/admin/reconciliation/discrepancy/?run__id__exact={run.pk}&state__exact=open")

    # then both are listed with their kind and payment
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    amount_row = rows.filter(has=page.locator(f"input[name=_selected_action][value='{amount.pk}']"))
    expect(amount_row.locator("td.field-kind")).to_have_text("Amount differs")
    expect(amount_row.locator("td.field-payment_link")).to_have_text(amount.payment.public_id)
    currency_row = rows.filter(has=page.locator(f"input[name=_selected_action][value='{currency.pk}']"))
    expect(currency_row.locator("td.field-kind")).to_have_text("Currency differs")
    expect(currency_row.locator("td.field-payment_link")).to_have_text(currency.payment.public_id)
    page.screenshot(path=str(tmp_path / "discrepancies.png"), full_page=True)

    # when they resolve the amount one with a reason through the admin action
    page.check(f"input[name=_selected_action][value='{amount.pk}']")
    page.select_option("select[name=action]", "resolve")
    page.fill("input[name=reason]", "Corrected the order total in the shop")
    page.click("button[name=index]")

    # then it is resolved by them, with a staff action, and the other one stays open
    expect(page.locator("ul.messagelist")).to_contain_text("1 discrepancies resolved; 0 were no longer open.")
    amount.refresh_from_db()
    assert (amount.state, amount.resolved_by, amount.note) == (
        DiscrepancyState.RESOLVED,
        lead,
        "Corrected the order total in the shop",
    )
    assert amount.resolved_at is not None
    currency.refresh_from_db()
    assert currency.state == DiscrepancyState.OPEN
    assert list(StaffAction.objects.values_list("actor", "action", "object_id", "reason")) == [
        (lead.pk, "discrepancy_resolve", str(amount.pk), "Corrected the order total in the shop")
    ]
    assert (tmp_path / "discrepancies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
