"""Manual review in a real browser: a payment held by the risk rules waits in the queue until staff decide.

The shop talks to the live server over HTTP (the API), staff use the admin in Chromium; approving lets the
shop capture, rejecting cancels the payment and releases the authorization at the gateway.
"""

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import APIRequestContext, Page, Playwright, expect

from accounts.models import User
from audit.models import StaffAction
from gateways.simulator import SimulatorGateway
from tests.accounts.factories import PASSWORD, UserFactory, totp_code
from tests.risk.factories import CurrencyThresholdFactory, RiskSettingsFactory

_keys = itertools.count(1)


@pytest.fixture
def agent(make_staff) -> User:
    return make_staff("agent-rex", "finance_agent")


@pytest.fixture
def known_rules(transactional_db) -> None:
    """The settings and usd thresholds this test was written against (a flush emptied the seeded ones)."""
    RiskSettingsFactory(review_score=50, block_score=90, amount_review_points=60)
    CurrencyThresholdFactory(currency="usd", review_amount=500_000, block_amount=5_000_000, first_seen_amount=100_000)


@pytest.fixture
def shop(live_server, playwright: Playwright, known_rules) -> Iterator[APIRequestContext]:
    """The storefront's HTTP client on the live server, holding a JWT."""
    client = UserFactory()
    anonymous = playwright.request.new_context(base_url=live_server.url)
    token = anonymous.post("/api/v1/auth/token/", data={"username": client.username, "password": PASSWORD})
    assert token.status == 200, token.text()
    access = token.json()["access"]
    anonymous.dispose()
    context = playwright.request.new_context(
        base_url=live_server.url, extra_http_headers={"Authorization": f"Bearer {access}"}
    )
    yield context
    context.dispose()


def create_payment(shop: APIRequestContext, **body: Any) -> dict[str, Any]:
    response = shop.post(
        "/api/v1/payments/",
        data={"currency": "usd", "payment_method": "pm_card_visa", "confirm": True, **body},
        headers={"Idempotency-Key": f"e2e-review-{next(_keys)}"},
    )
    assert response.status == 201, response.text()
    return response.json()


def held_payment(shop: APIRequestContext, customer_id: str) -> dict[str, Any]:
    """A returning customer's $5,000.00 payment: the amount reaches the usd review threshold, so it is held."""
    create_payment(shop, amount=2_000, customer_id=customer_id)
    payment = create_payment(shop, amount=500_000, customer_id=customer_id)
    assert payment["review"] == {"state": "pending", "reasons": ["amount_review_threshold"]}
    return payment


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(username))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


def _open_review(page: Page, base_url: str, public_id: str, *, screenshot: Path | None = None) -> None:
    """From the admin index's dashboard card to the queue (screenshot), then to the payment's decision page."""
    page.goto(f"{base_url}/admin/")
    expect(page.locator("#dash-reviews .dash-value")).to_have_text("1")
    page.click("#dash-reviews .dash-value a")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.locator(".field-payment_display")).to_have_text(public_id)
    expect(row.locator(".field-amount_display")).to_have_text("$5,000.00")
    reason = "amount $5,000.00 is at or above the review amount $5,000.00"
    expect(row.locator(".field-reasons_display")).to_contain_text(reason)
    expect(row.locator(".field-history_display")).to_have_text("1 payment, 0 declined, 0 refunds")
    expect(row.locator(".field-status_display")).to_have_text("requires_capture")
    expect(row.locator(".field-authorization_display")).to_contain_text("(in 6 d 23 h)")
    if screenshot:
        page.screenshot(path=str(screenshot), full_page=True)
    row.locator("a.decide-link").click()
    expect(page.locator("#review-summary .payment")).to_have_text(public_id)


@pytest.mark.django_db(transaction=True)
def test_staff_approve_a_held_payment_in_the_browser_then_the_shop_captures_it(
    live_server, page: Page, shop: APIRequestContext, agent, tmp_path
):
    # given a payment the risk rules held: pending in the API, and the shop cannot capture it yet
    payment = held_payment(shop, "cus_review_e2e")
    seen = shop.get(f"/api/v1/payments/{payment['id']}/").json()
    assert (seen["status"], seen["review"]["state"]) == ("requires_capture", "pending")
    refused = shop.post(f"/api/v1/payments/{payment['id']}/capture/", data={})
    assert (refused.status, refused.json()["error"]["code"]) == (409, "payment_in_review")

    # when an agent finds it in the review queue and approves it with a reason
    _log_in(page, live_server.url, "agent-rex")
    _open_review(page, live_server.url, payment["id"], screenshot=tmp_path / "review-queue.png")
    page.fill("#id_reason", "Customer confirmed the order by phone")
    page.screenshot(path=str(tmp_path / "review-decision.png"), full_page=True)
    page.click("#decision-approve")

    # then the queue is empty and says so
    expect(page.locator("ul.messagelist")).to_contain_text(f"Payment {payment['id']} approved")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
    assert list(StaffAction.objects.values_list("actor__username", "action", "reason")) == [
        ("agent-rex", "review_approve", "Customer confirmed the order by phone")
    ]
    # and the shop sees the review approved and captures the payment
    approved = shop.get(f"/api/v1/payments/{payment['id']}/").json()
    assert approved["review"]["state"] == "approved"
    captured = shop.post(f"/api/v1/payments/{payment['id']}/capture/", data={})
    assert (captured.status, captured.json()["status"]) == (200, "succeeded")
    assert (tmp_path / "review-queue.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.django_db(transaction=True)
def test_staff_reject_a_held_payment_and_the_authorization_is_released(
    live_server, page: Page, shop: APIRequestContext, agent, tmp_path
):
    # given a held payment
    payment = held_payment(shop, "cus_reject_e2e")
    cancels_before = SimulatorGateway.call_count("cancel_intent")

    # when an agent rejects it in the browser
    _log_in(page, live_server.url, "agent-rex")
    _open_review(page, live_server.url, payment["id"])
    page.fill("#id_reason", "Card reported stolen")
    page.click("#decision-reject")

    # then the payment is canceled and the gateway released the authorization
    message = f"Payment {payment['id']} rejected; the payment is canceled."
    expect(page.locator("ul.messagelist")).to_contain_text(message)
    page.screenshot(path=str(tmp_path / "review-rejected.png"), full_page=True)
    rejected = shop.get(f"/api/v1/payments/{payment['id']}/").json()
    assert (rejected["status"], rejected["review"]["state"]) == ("canceled", "rejected")
    assert SimulatorGateway.call_count("cancel_intent") == cancels_before + 1
    # and the payment page shows the closed review
    page.goto(f"{live_server.url}/admin/payments/payment/?q={payment['id']}")
    page.click(f"#result_list a:text-is('{payment['id']}')")
    expect(page.locator("#risk-review")).to_contain_text("Rejected by agent-rex")
    expect(page.locator("#risk-review")).to_contain_text("Card reported stolen")
    # and the shop can no longer capture it
    assert shop.post(f"/api/v1/payments/{payment['id']}/capture/", data={}).status == 409
