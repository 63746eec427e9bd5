"""The dispute desk in a real browser: a finance agent opens the queue (the soonest due first, with the time
left), opens that dispute, saves a draft, submits the evidence with a small PDF and sees it submitted. The
disputes are the simulator's (`pm_card_createDispute`), their webhooks delivered signed through the inbox."""

import importlib
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.apps import apps as django_apps
from django.utils import timezone
from playwright.sync_api import Dialog, Page, expect

from accounts.models import User
from audit.models import StaffAction
from disputes.models import Dispute, DisputeEvidenceFile
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.services import payment_create
from tests.accounts.factories import PASSWORD, UserFactory, totp_code
from webhooks.test_helpers import deliver_event

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SHARED_SCREENSHOT = Path("/tmp/artifacts/dispute_desk.png")  # noqa: S108 - where the lead collects it


@pytest.fixture
def agent(make_staff, settings) -> User:
    """A finance agent, who may read disputes and submit their evidence (the grants of disputes/0002)."""
    settings.PAYMENTS_GATEWAY = "simulator"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_e2e_disputes"  # noqa: S105 - the simulated deliveries' signing secret
    importlib.import_module("disputes.migrations.0002_staff_permissions").grant_permissions(django_apps, None)
    return make_staff("agent-dee", "finance_agent")


def _pay(shop: User, *, amount: int, customer_id: str) -> Payment:
    return payment_create(
        client=shop,
        amount=amount,
        currency="usd",
        customer_id=customer_id,
        payment_method="pm_card_createDispute",
        confirm=True,
    )


def _deliver_disputes() -> None:
    """The simulator's dispute webhooks, signed now (a signature's time must be recent)."""
    for event in SimulatorGateway.pending_dispute_events():
        deliver_event(event)


@pytest.fixture
def disputes(agent, tasks_inline) -> dict[str, Dispute]:
    """Two chargebacks: one opened two days ago (due in five days), one now (due in seven)."""
    shop = UserFactory()
    with time_machine.travel(timezone.now() - timedelta(days=2)):
        paid_older = _pay(shop, amount=4200, customer_id="cus_e2e_old")
    paid_newer = _pay(shop, amount=1999, customer_id="cus_e2e_new")
    _deliver_disputes()
    older = Dispute.objects.select_related("payment").get(payment=paid_older)
    newer = Dispute.objects.select_related("payment").get(payment=paid_newer)
    assert older.evidence_due_by is not None
    assert newer.evidence_due_by is not None
    assert older.evidence_due_by < newer.evidence_due_by
    return {"older": older, "newer": newer}


def _log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(username))
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


@pytest.mark.django_db(transaction=True)
def test_an_agent_answers_the_soonest_dispute_with_a_draft_then_submitted_evidence(
    live_server, page: Page, disputes, tmp_path
):
    older, newer = disputes["older"], disputes["newer"]
    page.set_viewport_size({"width": 1400, "height": 900})
    _log_in(page, live_server.url, "agent-dee")

    # when the agent opens the queue
    page.goto(f"{live_server.url}/admin/disputes/dispute/")

    # then the soonest due comes first, with the time left and no evidence yet
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".field-public_id")).to_have_text(older.public_id)
    expect(rows.nth(1).locator(".field-public_id")).to_have_text(newer.public_id)
    expect(rows.nth(0).locator(".field-time_left_display")).to_have_text(re.compile(r"^4 d 2[23] h$"))
    expect(rows.nth(1).locator(".field-time_left_display")).to_have_text(re.compile(r"^6 d 2[23] h$"))
    expect(rows.nth(0).locator(".field-amount_display")).to_have_text("$42.00")
    expect(rows.nth(0).locator(".field-evidence_display")).to_have_text("none")
    queue_shot = tmp_path / "dispute-queue.png"
    page.screenshot(path=str(queue_shot), full_page=True)

    # when they open it and save a draft
    page.click(f"#result_list a:text-is('{older.public_id}')")
    expect(page.locator("#dispute-payment-link")).to_have_text(older.payment.public_id)
    expect(page.locator("#dispute-payment-amount")).to_have_text("$42.00")
    page.fill("#id_customer_name", "Dee Customer")
    page.fill("#id_product_description", "Two tickets, delivered by e-mail")
    page.click("#evidence-save-draft")

    # then the draft is kept and shown in the form
    expect(page.locator("ul.messagelist")).to_contain_text(f"Evidence draft of {older.public_id} saved.")
    expect(page.locator("#id_customer_name")).to_have_value("Dee Customer")
    expect(page.locator("#dispute-evidence h2").first).to_have_text("Evidence (draft)")

    # when they attach a receipt and submit, confirming it
    page.set_input_files(
        "#id_file_receipt", files=[{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.fill("#id_uncategorized_text", "The customer downloaded both tickets.")
    asked: list[str] = []

    def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.click("#evidence-submit")

    # then it is submitted: under review, the form read-only, the receipt listed
    expect(page.locator("ul.messagelist")).to_contain_text(f"Evidence of {older.public_id} submitted to the bank.")
    assert len(asked) == 1
    assert "Submit this evidence to the bank?" in asked[0]
    expect(page.locator(".field-status .readonly")).to_have_text("Under review")
    expect(page.locator("#evidence-closed")).to_contain_text("it can no longer be changed")
    expect(page.locator("#evidence-form")).to_have_count(0)
    expect(page.locator("#id_customer_name")).to_be_disabled()
    expect(page.locator("#evidence-files .evidence-file")).to_contain_text("receipt.pdf")
    desk = tmp_path / "dispute_desk.png"
    page.screenshot(path=str(desk), full_page=True)
    SHARED_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(desk, SHARED_SCREENSHOT)

    # and back in the queue it reads submitted, with nothing left against the clock
    page.goto(f"{live_server.url}/admin/disputes/dispute/")
    expect(rows.nth(1).locator(".field-public_id")).to_have_text(older.public_id)
    expect(rows.nth(1).locator(".field-evidence_display")).to_have_text("submitted")
    expect(rows.nth(1).locator(".field-time_left_display")).to_have_text("—")

    done = Dispute.objects.get(pk=older.pk)
    assert (done.status, done.evidence["customer_name"]) == ("under_review", "Dee Customer")
    assert DisputeEvidenceFile.objects.get(dispute=done).size == len(PDF)
    assert list(StaffAction.objects.filter(object_type="dispute").order_by("id").values_list("action", flat=True)) == [
        "save_dispute_evidence",
        "submit_dispute_evidence",
    ]
    assert desk.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SHARED_SCREENSHOT.stat().st_size > 10_000
