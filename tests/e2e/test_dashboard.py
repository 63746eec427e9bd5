"""The admin index dashboard and a payment page in a real browser, with screenshots for people to look at."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import Page, expect

from payments.models import Payment
from payments.states import PaymentStatus as S
from tests.accounts.factories import PASSWORD, StaffUserFactory, UserFactory, totp_code
from tests.payments.factories import PaymentFactory


@pytest.fixture
def payments(transactional_db) -> list[Payment]:
    """A month of payments in usd, jpy and kwd, most captured, some failed."""
    shop = UserFactory()
    now = timezone.now()
    created = []
    for day in range(30):
        rows = []
        for i, (currency, amount) in enumerate(
            (("usd", 1999 + 150 * (day % 7)), ("jpy", 500 + 40 * day), ("kwd", 1500))
        ):
            if (day + i) % 4 == 3:
                status = S.FAILED
            elif (day + i) % 5 == 0:
                status = S.PROCESSING if day == 0 else S.CANCELED
            else:
                status = S.SUCCEEDED
            rows.append(
                PaymentFactory.build(
                    **{status.value: True},
                    client=shop,
                    amount=amount,
                    currency=currency,
                    customer_id=f"cus_{day}_{i}",
                    order_id=f"ord_dash_{day}_{i}",
                )
            )
        with time_machine.travel(now - timedelta(days=day), tick=False):
            created += Payment.objects.bulk_create(rows)
    return created


@pytest.mark.django_db(transaction=True)
def test_dashboard_and_payment_page_screenshots(live_server, page: Page, payments, tmp_path):
    # given a superuser logged in
    StaffUserFactory(superuser=True, username="boss")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code("boss"))
    page.click("input[type=submit]")

    # when they land on the admin index
    expect(page.locator("#user-tools")).to_contain_text("boss")

    # then the dashboard shows a chart per currency and the success rate, drawn without any script
    expect(page.locator("#dashboard svg.dash-chart")).to_have_count(4)
    expect(page.locator("#dash-volume-kwd h3")).to_contain_text(" KD")
    expect(page.locator("#dash-success-rate .dash-value")).not_to_have_text("—")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # and a payment's page renders too
    payment = next(p for p in payments if p.status == S.SUCCEEDED and p.currency == "kwd")
    page.goto(f"{live_server.url}/admin/payments/payment/{payment.pk}/change/")
    expect(page.locator("#content h2, #content h1").first).to_be_visible()
    expect(page.locator("body")).to_contain_text(payment.public_id)
    page.screenshot(path=str(tmp_path / "payment.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert (tmp_path / "payment.png").stat().st_size > 10_000
