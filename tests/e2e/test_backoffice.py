"""Back office in a real browser: an agent refunds part of a payment; an override needs a second person."""

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from events.models import Event
from payments.models import Payment
from payments.services import payment_create
from refunds.models import Refund
from tests.accounts.factories import PASSWORD, StaffUserFactory, UserFactory, totp_code

STAFF = (("agent-ann", "finance_agent"), ("lead-lou", "finance_lead"))


@pytest.fixture
def staff(make_staff) -> dict[str, User]:
    """One staff member per role."""
    return {username: make_staff(username, group) for username, group in STAFF}


@pytest.fixture
def payment(transactional_db) -> Payment:
    """Two captured payments made through the service (the refund goes to the simulator); returns the second."""
    shop = UserFactory()
    payment_create(
        client=shop, amount=900, currency="usd", customer_id="cus_x", payment_method="pm_card_visa", confirm=True
    )
    return payment_create(
        client=shop,
        amount=1500,
        currency="kwd",
        customer_id="cus_e2e",
        order_id="ord_backoffice_42",
        payment_method="pm_card_visa",
        confirm=True,
    )


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(username))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


@pytest.mark.django_db(transaction=True)
def test_agent_refunds_part_of_a_payment_found_by_order_id(live_server, page: Page, staff, payment, tmp_path):
    # given an agent logged in
    _log_in(page, live_server.url, "agent-ann")

    # when they search the payments by order id and open the one found
    page.goto(f"{live_server.url}/admin/payments/payment/")
    page.fill("#searchbar", "ord_backoffice_42")
    page.press("#searchbar", "Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.click(f"#result_list a:text-is('{payment.public_id}')")

    # and refund 0.250 KD of the 1.500 KD with a reason
    page.click("#refund-link")
    expect(page.locator("#remaining")).to_have_text("1.500 KD")
    expect(page.locator("#id_amount")).to_have_value("1.500")
    page.fill("#id_amount", "0.250")
    page.select_option("#id_refund_reason", "requested_by_customer")
    page.fill("#id_reason", "One item returned")
    page.screenshot(path=str(tmp_path / "refund-form.png"), full_page=True)
    page.click("#staff-action-form input[type=submit]")

    # then the payment page shows the refund and the staff action
    expect(page.locator("ul.messagelist")).to_contain_text("created.")
    refund = Refund.objects.get(payment=payment)
    assert (refund.amount, refund.requested_by.username) == (250, "agent-ann")
    expect(page.locator("#refunds-group")).to_contain_text(refund.public_id)
    expect(page.locator("#refunds-group")).to_contain_text("0.250 KD")
    staff_actions = page.locator("#staff-actions-group tr.staff-action")
    expect(staff_actions).to_have_count(1)
    expect(staff_actions.first.locator("td.field-action")).to_have_text("refund")
    expect(staff_actions.first.locator("td.field-reason")).to_have_text("One item returned")
    page.screenshot(path=str(tmp_path / "payment-page.png"), full_page=True)
    assert (tmp_path / "payment-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.django_db(transaction=True)
def test_override_is_refused_to_the_requester_and_approved_by_another(
    live_server, page: Page, staff, payment, tmp_path
):
    # given a lead who asks for a status override
    _log_in(page, live_server.url, "lead-lou")
    page.goto(f"{live_server.url}/admin/payments/payment/{payment.pk}/change/")
    page.click("#override-link")
    page.select_option("#id_to_status", "failed")
    page.fill("#id_reason", "Acquirer reversed the capture")
    page.click("#staff-action-form input[type=submit]")
    expect(page.locator("ul.messagelist")).to_contain_text("another staff member must approve it")
    request = ApprovalRequest.objects.get()

    # when the same lead tries to approve it: refused
    page.goto(f"{live_server.url}/admin/audit/approvalrequest/")
    page.check(f"input[name=_selected_action][value='{request.pk}']")
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("You cannot approve or reject your own request")
    page.screenshot(path=str(tmp_path / "approval-refused.png"), full_page=True)
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING

    # when another staff member with the permission approves it (an agent first: no such action for them)
    StaffUserFactory(username="lead-lee", groups=["finance_lead"])
    _log_in(page, live_server.url, "agent-ann")
    page.goto(f"{live_server.url}/admin/audit/approvalrequest/")
    expect(page.locator("select[name=action] option[value=approve_selected]")).to_have_count(0)
    _log_in(page, live_server.url, "lead-lee")
    page.goto(f"{live_server.url}/admin/audit/approvalrequest/")
    page.check(f"input[name=_selected_action][value='{request.pk}']")
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")

    # then the status is overridden, with its event and staff actions
    expect(page.locator("ul.messagelist")).to_contain_text(f"Request {request.pk} approved: status succeeded -> failed")
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert Event.objects.filter(subject_id=payment.public_id, type="payment.status_overridden").count() == 1
    assert list(StaffAction.objects.order_by("id").values_list("actor__username", "action")) == [
        ("lead-lou", "request_status_override"),
        ("lead-lee", "approve"),
        ("lead-lee", "status_override"),
    ]
    page.goto(f"{live_server.url}/admin/payments/payment/{payment.pk}/change/")
    expect(page.locator("#staff-actions-group td.field-action")).to_have_text(
        ["status_override", "approve", "request_status_override"]
    )
    page.screenshot(path=str(tmp_path / "overridden-payment.png"), full_page=True)
