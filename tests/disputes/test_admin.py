"""The back office's dispute desk: the queue, its filters and search, the dispute page, evidence (draft, submit,
refused once submitted or past its due date), accepting (four eyes above the approval limit), permissions."""

import importlib
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps as django_apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from disputes.models import Dispute, DisputeEvidenceFile, DisputeStatusChange
from gateways.simulator import SimulatorGateway
from tests.accounts.factories import StaffUserFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CHANGELIST = "/admin/disputes/dispute/"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _groups() -> None:
    importlib.import_module("accounts.migrations.0002_staff_groups").create_groups(django_apps, None)
    importlib.import_module("disputes.migrations.0002_staff_permissions").grant_permissions(django_apps, None)


def _staff(username: str, group: str) -> Client:
    _groups()
    client = Client()
    client.force_login(StaffUserFactory(username=username, groups=[group]))
    return client


@pytest.fixture
def agent() -> Client:
    return _staff("agent", "finance_agent")


@pytest.fixture
def lead() -> Client:
    return _staff("lead-1", "finance_lead")


@pytest.fixture
def second_lead() -> Client:
    return _staff("lead-2", "finance_lead")


@pytest.fixture
def auditor() -> Client:
    return _staff("auditor-1", "auditor")


def _row(payment=None, *, due_in: timedelta | None = timedelta(days=7), status="needs_response", **fields) -> Dispute:
    """A dispute as the webhooks would have stored it (queue tests need many, at chosen deadlines)."""
    payment = payment or PaymentFactory(succeeded=True)
    fields.setdefault("amount", payment.amount)
    return Dispute.objects.create(
        client_id=payment.client_id,
        payment=payment,
        currency=payment.currency,
        reason=fields.pop("reason", "fraudulent"),
        status=status,
        evidence_due_by=None if due_in is None else NOW + due_in,
        gateway_name="simulator",
        gateway_reference=f"du_row_{Dispute.objects.count() + 1}_{payment.pk}",
        **fields,
    )


def _shown_ids(response) -> list[str]:
    return [dispute.public_id for dispute in response.context["cl"].result_list]


def _cells(response, column: str) -> list[str]:
    cells = re.findall(rf'<td class="field-{column}">(.*?)</td>', response.content.decode())
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- the queue ---------------------------------------------------------------------------------------------
def test_the_queue_shows_open_disputes_first_the_soonest_due_first_with_the_time_left(agent):
    with time_machine.travel(NOW, tick=False):
        later = _row(due_in=timedelta(days=3, hours=4, minutes=20))
        soon = _row(due_in=timedelta(hours=5, minutes=12))
        overdue = _row(due_in=-timedelta(hours=1))
        reviewed = _row(status="under_review", due_in=timedelta(hours=2), submission_count=1, evidence_submitted_at=NOW)
        closed = _row(status="won", due_in=timedelta(hours=1), submission_count=1, evidence_submitted_at=NOW)
        drafted = _row(due_in=timedelta(days=6), has_evidence=True, evidence={"customer_name": "Ann"})

        response = agent.get(CHANGELIST)

    assert response.status_code == 200
    assert _shown_ids(response) == [
        overdue.public_id,
        soon.public_id,
        later.public_id,
        drafted.public_id,
        reviewed.public_id,
        closed.public_id,
    ]
    assert _cells(response, "time_left_display") == ["overdue", "5 h 12 min", "3 d 4 h", "6 d 0 h", "—", "—"]
    assert _cells(response, "evidence_display") == ["none", "none", "none", "draft", "submitted", "submitted"]
    assert 'class="dispute-overdue" style="color:#ba2121">overdue<' in response.content.decode()
    assert _cells(response, "amount_display")[0] == "$20.00"
    assert f'<a href="/admin/payments/payment/{overdue.payment_id}/change/">{overdue.payment.public_id}</a>' in (
        response.content.decode()
    )


def test_amounts_are_shown_with_the_currency_exponent(agent):
    with time_machine.travel(NOW, tick=False):
        _row(PaymentFactory(succeeded=True, amount=1500, currency="jpy"))
        _row(PaymentFactory(succeeded=True, amount=1500, currency="kwd"), due_in=timedelta(days=8))

        response = agent.get(CHANGELIST)

    assert _cells(response, "amount_display") == ["¥1,500", "1.500 KD"]


def test_the_deadline_status_and_reason_filters(agent):
    with time_machine.travel(NOW, tick=False):
        in_20h = _row(due_in=timedelta(hours=20))
        in_40h = _row(due_in=timedelta(hours=40), reason="duplicate")
        in_5d = _row(due_in=timedelta(days=5))
        in_9d = _row(due_in=timedelta(days=9))
        overdue = _row(due_in=-timedelta(minutes=5))
        _row(status="under_review", due_in=timedelta(hours=3), submission_count=1)  # submitted: not due
        lost = _row(status="lost", due_in=-timedelta(days=1))

        shown = {value: set(_shown_ids(agent.get(CHANGELIST, {"deadline": value}))) for value in ("24h", "48h", "7d")}
        overdue_shown = _shown_ids(agent.get(CHANGELIST, {"deadline": "overdue"}))
        lost_shown = _shown_ids(agent.get(CHANGELIST, {"status": "lost"}))
        duplicate_shown = _shown_ids(agent.get(CHANGELIST, {"reason": "duplicate"}))

    assert shown["24h"] == {in_20h.public_id}
    assert shown["48h"] == {in_20h.public_id, in_40h.public_id}
    assert shown["7d"] == {in_20h.public_id, in_40h.public_id, in_5d.public_id}
    assert in_9d.public_id not in shown["7d"]
    assert overdue_shown == [overdue.public_id]
    assert lost_shown == [lost.public_id]
    assert duplicate_shown == [in_40h.public_id]


def test_search_finds_one_exact_id_of_the_dispute_the_gateway_or_the_payment(agent):
    with time_machine.travel(NOW, tick=False):
        one = _row()
        other = _row()

        by_ours = _shown_ids(agent.get(CHANGELIST, {"q": one.public_id}))
        by_gateway = _shown_ids(agent.get(CHANGELIST, {"q": one.gateway_reference}))
        by_payment = _shown_ids(agent.get(CHANGELIST, {"q": other.payment.public_id}))
        by_part = _shown_ids(agent.get(CHANGELIST, {"q": one.public_id[:8]}))

    assert by_ours == [one.public_id]
    assert by_gateway == [one.public_id]
    assert by_payment == [other.public_id]
    assert by_part == []


def test_the_queue_costs_the_same_queries_whatever_its_length(agent):
    def queries_for(count: int) -> int:
        Dispute.objects.all().delete()
        for n in range(count):
            _row(due_in=timedelta(hours=n + 1))
        with CaptureQueriesContext(connection) as captured:
            response = agent.get(CHANGELIST)
        assert len(response.context["cl"].result_list) == count
        return len(captured)

    with time_machine.travel(NOW, tick=False):
        assert queries_for(3) == queries_for(30)


# --- the dispute's page ------------------------------------------------------------------------------------
def test_the_page_shows_the_payment_the_customers_history_the_risk_and_the_status_history(agent):
    payment = PaymentFactory(
        succeeded=True, customer_id="cus_hist", amount=5000, risk_score=35, risk_level="medium", review_state=""
    )
    PaymentFactory(succeeded=True, client=payment.client, customer_id="cus_hist", amount=1200)
    earlier = PaymentFactory(succeeded=True, client=payment.client, customer_id="cus_hist", amount=800)
    PaymentFactory(succeeded=True, customer_id="cus_hist", amount=999)  # another shop's customer of that id
    with time_machine.travel(NOW, tick=False):
        dispute = _row(payment)
        old = _row(earlier, status="won")
        DisputeStatusChange.objects.create(
            dispute=dispute, from_status="", to_status="needs_response", source="webhook"
        )

        response = agent.get(f"{CHANGELIST}{dispute.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="dispute-payment-link">{payment.public_id}</a>' in html
    assert 'id="dispute-payment-amount">$50.00<' in html
    assert 'id="dispute-payment-refunded">$0.00<' in html
    assert 'id="customer-payments-count">2<' in html
    assert "2 payments, $20.00 ($20.00 received, $0.00 refunded), 0 disputed" in html
    assert f'class="customer-dispute">{old.public_id}</a> (Won, $8.00, fraudulent)' in html
    assert 'id="risk-score">35<' in html
    assert 'id="risk-level">medium<' in html
    assert "Status history" in html
    assert "needs_response" in html
    assert 'id="evidence-form"' in html
    assert 'id="dispute-accept-link"' in html


# --- evidence through the admin, on the simulator ----------------------------------------------------------
@pytest.fixture
def disputed(storefront, deliver):
    """A payment confirmed with the disputing test card through the API, the dispute's webhooks delivered."""

    def make(amount: int = 2000) -> Dispute:
        body = {"amount": amount, "currency": "usd", "customer_id": "cus_d", "payment_method": "pm_card_createDispute"}
        created = storefront.post(
            "/api/v1/payments/", {**body, "confirm": True}, format="json", HTTP_IDEMPOTENCY_KEY=f"dp-{amount}"
        )
        assert created.status_code == 201, created.json()
        for event in SimulatorGateway.pending_dispute_events():
            deliver(event)
        return Dispute.objects.get(payment__public_id=created.json()["id"])

    return make


def _post_evidence(client: Client, dispute: Dispute, button: str, **fields):
    return client.post(f"{CHANGELIST}{dispute.pk}/evidence/", {button: "1", **fields}, follow=True)


def test_evidence_saved_as_a_draft_then_submitted_to_the_bank(disputed, agent):
    dispute = disputed()
    assert (dispute.status, dispute.gateway_name) == ("needs_response", "simulator")

    # when the agent saves a draft with two text fields and a receipt
    receipt = SimpleUploadedFile("receipt.pdf", PDF, content_type="application/pdf")
    drafted = _post_evidence(
        agent,
        dispute,
        "_save_draft",
        customer_name="Ann Example",
        product_description="A blue mug",
        file_receipt=receipt,
    )

    # then the draft is saved at the gateway and here, prefilled on the page, the dispute still needs a response
    assert f"Evidence draft of {dispute.public_id} saved." in _messages(drafted)
    dispute.refresh_from_db()
    assert dispute.status == "needs_response"
    assert dispute.evidence == {"customer_name": "Ann Example", "product_description": "A blue mug"}
    assert dispute.evidence_submitted_at is None
    saved_file = DisputeEvidenceFile.objects.get(dispute=dispute)
    assert (saved_file.field, saved_file.filename, saved_file.content_type, saved_file.size) == (
        "receipt",
        "receipt.pdf",
        "application/pdf",
        len(PDF),
    )
    assert saved_file.gateway_file_id.startswith("file_")
    assert 'value="Ann Example"' in drafted.content.decode()
    assert _cells(agent.get(CHANGELIST), "evidence_display") == ["draft"]

    # when they submit it (the product description changed)
    submitted = _post_evidence(
        agent, dispute, "_submit", customer_name="Ann Example", product_description="A blue mug, 250 ml"
    )

    # then it is under review at the bank, and the form is read-only with a message saying why
    assert f"Evidence of {dispute.public_id} submitted to the bank." in _messages(submitted)
    dispute.refresh_from_db()
    assert dispute.status == "under_review"
    assert dispute.evidence["product_description"] == "A blue mug, 250 ml"
    assert dispute.evidence_submitted_at is not None
    html = submitted.content.decode()
    assert 'id="evidence-closed"' in html
    assert "it can no longer be changed" in html
    assert 'id="evidence-form"' not in html
    assert list(
        StaffAction.objects.filter(object_type="dispute").order_by("id").values_list("action", "actor__username")
    ) == [("save_dispute_evidence", "agent"), ("submit_dispute_evidence", "agent")]
    draft_log = StaffAction.objects.get(action="save_dispute_evidence")
    assert draft_log.after["changed"] == ["customer_name", "product_description"]
    assert draft_log.after["files"] == ["receipt"]
    assert "Ann Example" not in str(draft_log.after)  # field names only: no personal data in the staff log


def test_evidence_after_submission_is_refused_and_calls_nothing(disputed, agent):
    dispute = disputed()
    _post_evidence(agent, dispute, "_submit", customer_name="Ann")
    dispute.refresh_from_db()
    saves = dispute.evidence_saves

    again = _post_evidence(agent, dispute, "_save_draft", customer_name="Bob")

    assert any("it can no longer be changed" in text for text in _messages(again))
    dispute.refresh_from_db()
    assert (dispute.evidence, dispute.evidence_saves) == ({"customer_name": "Ann"}, saves)
    assert StaffAction.objects.filter(object_type="dispute").count() == 1


def test_evidence_past_its_due_date_is_refused_and_the_form_is_read_only(disputed, agent):
    dispute = disputed()
    assert dispute.evidence_due_by is not None

    with time_machine.travel(dispute.evidence_due_by + timedelta(hours=1)):
        agent.force_login(User.objects.get(username="agent"))  # staff sessions expire sooner than a week
        page = agent.get(f"{CHANGELIST}{dispute.pk}/change/")
        refused = _post_evidence(agent, dispute, "_submit", customer_name="Ann")
        listed = agent.get(CHANGELIST)

    assert "the bank takes no more evidence" in page.content.decode()
    assert 'id="evidence-form"' not in page.content.decode()
    assert re.search(r'<input type="text" name="customer_name"[^>]* disabled', page.content.decode())
    assert any("the bank takes no more evidence" in text for text in _messages(refused))
    dispute.refresh_from_db()
    assert (dispute.status, dispute.evidence, dispute.evidence_saves) == ("needs_response", {}, 0)
    assert _cells(listed, "time_left_display") == ["overdue"]


def test_a_file_of_the_wrong_type_is_refused_and_nothing_is_sent(disputed, agent):
    dispute = disputed()
    fake = SimpleUploadedFile("receipt.pdf", b"MZ\x90\x00not a pdf", content_type="application/pdf")

    response = _post_evidence(agent, dispute, "_save_draft", customer_name="Ann", file_receipt=fake)

    assert response.status_code == 200
    assert "Only PDF, JPEG and PNG files are accepted as evidence." in response.content.decode()
    dispute.refresh_from_db()
    assert (dispute.evidence, dispute.evidence_saves) == ({}, 0)
    assert not DisputeEvidenceFile.objects.exists()


# --- accepting -----------------------------------------------------------------------------------------------
def _accept(client: Client, dispute: Dispute, reason: str = "No proof of delivery"):
    return client.post(f"{CHANGELIST}{dispute.pk}/accept/", {"reason": reason}, follow=True)


def test_accepting_within_the_approval_limit_closes_it_as_lost_at_once(disputed, agent):
    dispute = disputed(amount=2000)  # $20.00, within the $500.00 limit

    response = _accept(agent, dispute)

    assert f"Dispute {dispute.public_id} accepted: lost." in _messages(response)
    dispute.refresh_from_db()
    assert dispute.status == "lost"
    action = StaffAction.objects.get(action="accept_dispute")
    assert (action.actor.username, action.object_id) == ("agent", dispute.public_id)
    assert action.reason == "No proof of delivery"
    assert (action.before["status"], action.after["status"]) == ("needs_response", "lost")
    assert not ApprovalRequest.objects.exists()
    assert 'id="dispute-accept-link"' not in response.content.decode()


def test_accepting_above_the_approval_limit_needs_a_second_person(
    disputed, lead, second_lead, django_capture_on_commit_callbacks
):
    dispute = disputed(amount=60_000)  # $600.00, above the $500.00 limit

    # when a lead accepts it, a request waits and the dispute stays open
    asked = _accept(lead, dispute, reason="Customer admitted the purchase")
    request = ApprovalRequest.objects.get()
    assert f"Above the approval limit: request {request.pk} waits for another staff member's approval." in _messages(
        asked
    )
    assert (request.kind, request.object_id, request.params) == (
        "dispute_accept",
        dispute.public_id,
        {"amount": 60_000, "currency": "usd"},
    )
    dispute.refresh_from_db()
    assert dispute.status == "needs_response"
    assert "accept a dispute (lose $600.00)" in lead.get("/admin/audit/approvalrequest/").content.decode()

    # when the requester approves their own request, nothing runs
    decide = {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        own = lead.post("/admin/audit/approvalrequest/", decide, follow=True)
    assert any("cannot approve or reject your own request" in text for text in _messages(own))
    request.refresh_from_db()
    dispute.refresh_from_db()
    assert (request.status, dispute.status) == (ApprovalStatus.PENDING, "needs_response")

    # when a second lead approves it, the dispute is accepted at the gateway: lost
    with django_capture_on_commit_callbacks(execute=True):
        second_lead.post("/admin/audit/approvalrequest/", decide)
    request.refresh_from_db()
    dispute.refresh_from_db()
    assert (request.status, dispute.status) == (ApprovalStatus.APPROVED, "lost")
    done = StaffAction.objects.get(action="accept_dispute")
    assert (done.actor.username, done.reason, done.after["approval_request"]) == (
        "lead-2",
        "Customer admitted the purchase",
        request.pk,
    )


# --- permissions ---------------------------------------------------------------------------------------------
def test_an_auditor_reads_the_desk_but_cannot_submit_or_accept(disputed, auditor):
    dispute = disputed()

    listed = auditor.get(CHANGELIST)
    page = auditor.get(f"{CHANGELIST}{dispute.pk}/change/")
    submitted = auditor.post(f"{CHANGELIST}{dispute.pk}/evidence/", {"_submit": "1", "customer_name": "Ann"})
    accepted = auditor.post(f"{CHANGELIST}{dispute.pk}/accept/", {"reason": "Because"})

    assert _shown_ids(listed) == [dispute.public_id]
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="evidence-form"' not in html
    assert 'id="evidence-not-allowed"' in html
    assert 'id="dispute-accept-link"' not in html
    assert (submitted.status_code, accepted.status_code) == (403, 403)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.evidence, dispute.evidence_saves) == ("needs_response", {}, 0)
    assert not StaffAction.objects.filter(object_type="dispute").exists()
    assert not ApprovalRequest.objects.exists()


def test_the_dispute_page_costs_the_same_queries_whatever_the_customers_history(agent):
    def queries_for(others: int) -> int:
        payment = PaymentFactory(succeeded=True, customer_id=f"cus_many_{others}")
        for _ in range(others):
            other = PaymentFactory(succeeded=True, client=payment.client, customer_id=payment.customer_id)
            _row(other, status="lost")
        dispute = _row(payment)
        with CaptureQueriesContext(connection) as captured:
            response = agent.get(f"{CHANGELIST}{dispute.pk}/change/")
        assert response.status_code == 200
        assert f'id="customer-payments-count">{others}<' in response.content.decode()
        return len(captured)

    with time_machine.travel(NOW, tick=False):
        assert queries_for(2) == queries_for(20)
