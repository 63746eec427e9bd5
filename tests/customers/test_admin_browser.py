"""A finance agent finds a customer in the back office and detaches a saved card, in a real browser (Chromium)."""

import pytest
from playwright.sync_api import Page, expect

from audit.models import StaffAction
from customers.models import Customer, PaymentMethod
from customers.services import payment_method_attach
from tests.accounts.factories import PASSWORD, UserFactory, totp_code
from tests.customers.conftest import create_customer_staff_groups
from tests.e2e.conftest import browser_type_launch_args, make_staff  # noqa: F401 - the e2e setup


@pytest.fixture
def staff_groups(transactional_db) -> None:
    create_customer_staff_groups()


@pytest.mark.django_db(transaction=True)
def test_agent_finds_the_customer_by_email_sees_its_cards_and_detaches_one(
    live_server,
    page: Page,
    make_staff,  # noqa: F811 - the e2e fixture
):
    shop = UserFactory(username="shop-browser")
    _, visa = payment_method_attach(client=shop, customer_id="cus_browser", payment_method="pm_card_visa")
    _, mastercard = payment_method_attach(
        client=shop, customer_id="cus_browser", payment_method="pm_card_mastercard", set_default=True
    )
    customer = Customer.objects.get(customer_id="cus_browser")
    customer.email = "grace@example.com"
    customer.save(update_fields=["email"])  # save() keeps the e-mail's blind index, which search reads
    make_staff("agent-browser", "finance_agent")

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "agent-browser")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code("agent-browser"))
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/customers/customer/")
    page.fill("#searchbar", "grace@example.com")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("th a").click()

    methods = page.locator("#saved-methods-group tbody tr.saved-method")
    expect(methods).to_have_count(2)
    expect(page.locator(f"#method-{mastercard.public_id} td.field-card")).to_have_text("mastercard •••• 4444")
    expect(page.locator(f"#method-{mastercard.public_id} td.field-default")).to_have_text("default")
    expect(page.locator(f"#method-{visa.public_id} td.field-status")).to_have_text("active")

    page.locator(f"#method-{visa.public_id} a.detach-link").click()
    page.click("#detach-submit")  # no reason: the form is not sent
    expect(page.locator("#id_reason:invalid")).to_have_count(1)
    assert PaymentMethod.objects.get(pk=visa.pk).status == "active"
    page.fill("#id_reason", "card reported lost")
    page.click("#detach-submit")

    expect(page.locator(".messagelist")).to_contain_text(f"Payment method {visa.public_id} detached.")
    expect(page.locator(f"#method-{visa.public_id} td.field-status")).to_have_text("detached")
    expect(page.locator(f"#method-{visa.public_id} a.detach-link")).to_have_count(0)
    expect(page.locator("#staff-actions-group td.field-reason")).to_have_text(["card reported lost"])
    assert PaymentMethod.objects.get(pk=visa.pk).status == "detached"
    assert StaffAction.objects.filter(action="detach_payment_method", object_id=visa.public_id).count() == 1
