"""A finance person finds a payment in the admin and reads its amount and history, in a real browser."""

import pytest
from playwright.sync_api import Page, expect

from payments.services import payment_create
from tests.accounts.factories import PASSWORD, StaffUserFactory, UserFactory, totp_code


@pytest.mark.django_db(transaction=True)
def test_staff_finds_a_payment_by_id_and_sees_amount_and_history(live_server, page: Page, tmp_path):
    # given a staff superuser and two captured payments
    StaffUserFactory(superuser=True, username="finance-lead")
    shop = UserFactory()
    wanted = payment_create(
        client=shop,
        amount=1500,
        currency="kwd",
        customer_id="cus_e2e",
        order_id="ord_e2e",
        payment_method="pm_card_visa",
        confirm=True,
    )
    other = payment_create(
        client=shop, amount=2000, currency="usd", customer_id="cus_other", payment_method="pm_card_visa", confirm=True
    )

    # when they log in, search the changelist by the payment's id and open it
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "finance-lead")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code("finance-lead"))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("finance-lead")
    page.goto(f"{live_server.url}/admin/payments/payment/")
    expect(page.locator("#result_list")).to_contain_text(other.public_id)
    page.fill("#searchbar", wanted.public_id)
    page.press("#searchbar", "Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    expect(results.first.locator("td.field-amount_display")).to_have_text("1.500 KD")
    page.click(f"#result_list a:text-is('{wanted.public_id}')")

    # then the change page shows the formatted money and the status history
    expect(page.locator("h2", has_text=wanted.public_id)).to_be_visible()
    expect(page.locator(".field-amount_display .readonly")).to_have_text("1.500 KD")
    expect(page.locator(".field-received_display .readonly")).to_have_text("1.500 KD")
    history = page.locator("#status_changes-group")
    expect(history).to_be_visible()
    expect(history.locator("tbody tr.has_original td.field-to_status")).to_have_text(
        ["succeeded", "requires_confirmation"]
    )
    events = page.locator("#events-group")
    expect(events.locator("tbody tr.has_original td.field-type")).to_have_text(
        ["payment.captured", "payment.initiated"]
    )
    screenshot = tmp_path / "payment-change-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
