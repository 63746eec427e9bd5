"""Subscriptions in a real browser: a finance agent finds one by id, reads its page, cancels it at period end and
cancels another now; the dashboard's MRR follows. The data is made through the subscriptions services on the
simulator gateway."""

import importlib
from datetime import datetime

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.utils import formats, timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from audit.models import StaffAction
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from tests.accounts.factories import PASSWORD, UserFactory, totp_code


@pytest.fixture
def agent(make_staff, settings) -> User:
    """A finance agent, who may view and cancel subscriptions (the grants of subscriptions/0002)."""
    settings.PAYMENTS_GATEWAY = "simulator"
    importlib.import_module("subscriptions.migrations.0002_staff_permissions").grant_permissions(django_apps, None)
    return make_staff("agent-sue", "finance_agent")


@pytest.fixture
def subscriptions(agent, tasks_inline) -> dict[str, Subscription]:
    """Four subscriptions of the simulator's catalog, each first invoice paid: three in usd, one in jpy."""
    call_command("sync_prices", "--quiet")
    shop = UserFactory()
    plans = {
        "basic": ("cus_e2e_basic", "price_basic_monthly", 1),  # $9.00 a month
        "yearly": ("cus_e2e_yearly", "price_pro_yearly", 1),  # $290.00 a year: $24.1666… a month
        "pro": ("cus_e2e_pro", "price_pro_monthly", 2),  # 2 × $29.00 a month
        "jpy": ("cus_e2e_jpy", "price_jpy_monthly", 1),  # ¥1,000 a month
    }
    made = {
        name: subscription_create(
            client=shop,
            customer_id=customer_id,
            price=price,
            quantity=quantity,
            payment_method="pm_card_visa",
            request_reference=f"e2e-sub-{name}",
        )
        for name, (customer_id, price, quantity) in plans.items()
    }
    assert {sub.status for sub in made.values()} == {"active"}
    return {
        name: Subscription.objects.select_related("customer", "price", "latest_invoice").get(pk=sub.pk)
        for name, sub in made.items()
    }


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(username))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


def _shown(value: datetime) -> str:
    """A datetime as the admin shows a read-only one."""
    return formats.localize(timezone.template_localtime(value))


def _cancel(page: Page, *, reason: str, at_period_end: bool) -> None:
    page.click("#staff-cancel")
    expect(page.locator("#cancel-form")).to_be_visible()
    if at_period_end:
        page.check("#id_at_period_end")
    page.fill("#id_reason", reason)
    page.click("#cancel-submit")


@pytest.mark.django_db(transaction=True)
def test_agent_finds_and_cancels_subscriptions_and_the_dashboard_mrr_follows(
    live_server, page: Page, subscriptions, tmp_path
):
    basic, pro = subscriptions["basic"], subscriptions["pro"]
    page.set_viewport_size({"width": 1400, "height": 900})
    _log_in(page, live_server.url, "agent-sue")

    # before anything is canceled the dashboard's MRR is every subscription's month: 900 + 29000/12 + 5800 cents,
    # summed as a fraction and rounded down once (9116)
    expect(page.locator("#dash-mrr-usd")).to_have_text("$91.16")
    expect(page.locator("#dash-mrr-jpy")).to_have_text("¥1,000")
    expect(page.locator("#dash-active-subscriptions .dash-value")).to_have_text("4")

    # when the agent searches the subscriptions by id and opens the one found
    page.goto(f"{live_server.url}/admin/subscriptions/subscription/")
    page.fill("#searchbar", basic.public_id)
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".field-price")).to_have_text("price_basic_monthly")
    page.click(f"#result_list a:text-is('{basic.public_id}')")

    # then its page shows the status, price, customer, period and latest invoice
    expect(page.locator(".field-status .readonly")).to_have_text("Active")
    expect(page.locator(".field-price .readonly")).to_have_text("price_basic_monthly")
    expect(page.locator(".field-customer .readonly")).to_have_text(basic.customer.public_id)
    expect(page.locator(".field-current_period_start .readonly")).to_have_text(_shown(basic.current_period_start))
    expect(page.locator(".field-current_period_end .readonly")).to_have_text(_shown(basic.current_period_end))
    assert basic.latest_invoice is not None
    expect(page.locator(".field-latest_invoice .readonly")).to_have_text(basic.latest_invoice.public_id)

    # when they cancel it at the end of its period, with a reason
    _cancel(page, reason="Customer asked by e-mail", at_period_end=True)

    # then it stays active until then, and says so
    expect(page.locator("ul.messagelist")).to_contain_text(f"Subscription {basic.public_id} canceled at the end")
    expect(page.locator(".field-status .readonly")).to_have_text("Active")
    expect(page.locator(".field-cancel_at_period_end img")).to_have_attribute("alt", "True")
    page.screenshot(path=str(tmp_path / "subscription-cancel-at-period-end.png"), full_page=True)

    # when they cancel the pro subscription now
    page.goto(f"{live_server.url}/admin/subscriptions/subscription/{pro.pk}/change/")
    _cancel(page, reason="Chargeback on the last invoice", at_period_end=False)

    # then it is canceled, with no cancel link left
    expect(page.locator("ul.messagelist")).to_contain_text(f"Subscription {pro.public_id} canceled now")
    expect(page.locator(".field-status .readonly")).to_have_text("Canceled")
    expect(page.locator("#staff-cancel")).to_have_count(0)

    # and the dashboard's MRR lost the pro subscription's $58.00 (the basic one bills until its period ends)
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#dash-mrr-usd")).to_have_text("$33.16")
    expect(page.locator("#dash-mrr-jpy")).to_have_text("¥1,000")
    expect(page.locator("#dash-active-subscriptions .dash-value")).to_have_text("3")
    expect(page.locator("#dash-churn .dash-value")).to_have_text("1")
    expect(page.locator("#dash-failed-invoices .dash-value")).to_have_text("0")
    page.locator("#dash-subscriptions").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "dashboard-subscriptions.png"), full_page=True)

    assert list(
        StaffAction.objects.filter(action="cancel_subscription").order_by("id").values_list("object_id", "reason")
    ) == [(basic.public_id, "Customer asked by e-mail"), (pro.public_id, "Chargeback on the last invoice")]
    assert (tmp_path / "dashboard-subscriptions.png").stat().st_size > 10_000
