"""End to end on the simulator: a test card disputed, its webhooks delivered, answered through the API, decided."""

import hashlib

import pytest

from disputes import services
from disputes.models import Dispute, DisputeEvidenceFile
from events.models import Event
from gateways.disputes import EvidenceFile
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed(storefront, deliver):
    """A payment confirmed with a disputing test card, and the dispute's first webhooks delivered."""

    def make(token: str = "pm_card_createDispute") -> Dispute:  # noqa: S107 - a test card, not a secret
        body = {"amount": 2000, "currency": "usd", "customer_id": "cus_d", "payment_method": token, "confirm": True}
        created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"dp-{token}")
        assert created.status_code == 201, created.json()
        assert created.json()["status"] == "succeeded"
        for event in SimulatorGateway.pending_dispute_events():
            deliver(event)
        return Dispute.objects.get(payment__public_id=created.json()["id"])

    return make


def _deliver_pending(deliver) -> list[dict]:
    events = SimulatorGateway.pending_dispute_events()
    for event in events:
        deliver(event)
    return events


def test_a_disputed_card_answered_with_evidence_and_won(disputed, deliver, finance, storefront):
    # given: the bank disputes the charge at once
    dispute = disputed()
    assert (dispute.status, dispute.reason, dispute.funds_withdrawn, dispute.gateway_name) == (
        "needs_response",
        "fraudulent",
        True,
        "simulator",
    )
    payment = Payment.objects.get(pk=dispute.payment_id)
    assert (payment.amount_disputed, payment.amount_dispute_held) == (2000, 2000)

    # when: finance drafts and submits evidence
    draft = finance.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence/",
        {"evidence": {"customer_name": "Ada Lovelace"}},
        format="json",
    )
    submitted = finance.post(
        f"/api/v1/disputes/{dispute.public_id}/evidence/",
        {"evidence": {"product_description": "A book, delivered."}, "submit": True},
        format="json",
    )

    # then
    assert draft.status_code == 200, draft.json()
    assert (draft.json()["status"], draft.json()["has_evidence"]) == ("needs_response", True)
    assert submitted.status_code == 200, submitted.json()
    assert (submitted.json()["status"], submitted.json()["submission_count"]) == ("under_review", 1)
    told = _deliver_pending(deliver)  # the gateway's charge.dispute.updated for both: old news by now
    assert [event["type"] for event in told] == ["charge.dispute.updated", "charge.dispute.updated"]
    assert {WebhookEvent.objects.get(stripe_id=event["id"]).status for event in told} == {"ignored"}

    # when: the bank decides for the shop
    for event in SimulatorGateway().close_dispute_as(reference=dispute.gateway_reference, outcome="won"):
        deliver(event)

    # then
    shown = storefront.get(f"/api/v1/disputes/{dispute.public_id}/").json()
    assert (shown["status"], shown["funds_withdrawn"], shown["funds_reinstated"]) == ("won", True, True)
    assert shown["evidence"] == {"customer_name": "Ada Lovelace", "product_description": "A book, delivered."}
    paid = storefront.get(f"/api/v1/payments/{payment.public_id}/").json()
    assert (paid["amount_disputed"], paid["disputed"], paid["status"]) == (0, True, "succeeded")
    types = list(Event.objects.filter(subject_id=dispute.public_id).values_list("type", flat=True))
    assert types == [
        "dispute.created",
        "dispute.funds_withdrawn",
        "dispute.updated",
        "dispute.updated",
        "dispute.closed",
        "dispute.funds_reinstated",
    ]


def test_a_disputed_card_accepted_is_lost(disputed, deliver, finance):
    dispute = disputed()

    accepted = finance.post(f"/api/v1/disputes/{dispute.public_id}/accept/", format="json")
    told = _deliver_pending(deliver)

    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["status"] == "lost"
    assert [event["type"] for event in told] == ["charge.dispute.closed"]
    dispute.refresh_from_db()
    dispute.payment.refresh_from_db()
    held = (dispute.payment.amount_disputed, dispute.payment.amount_dispute_held)
    assert (dispute.status, held) == ("lost", (2000, 2000))
    assert Event.objects.filter(subject_id=dispute.public_id, type="dispute.closed").count() == 1


def test_a_submitted_dispute_lost_at_the_bank(disputed, deliver, finance):
    dispute = disputed()
    finance.post(f"/api/v1/disputes/{dispute.public_id}/evidence/", {"submit": True}, format="json")
    _deliver_pending(deliver)

    for event in SimulatorGateway().close_dispute_as(reference=dispute.gateway_reference, outcome="lost"):
        deliver(event)

    dispute.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("lost", True, False)


def test_an_inquiry_card_moves_no_money_and_stays_refundable(disputed, storefront):
    dispute = disputed("pm_card_createDisputeInquiry")

    assert (dispute.status, dispute.funds_withdrawn, dispute.is_charge_refundable) == (
        "warning_needs_response",
        False,
        True,
    )
    refund = storefront.post(
        f"/api/v1/payments/{dispute.payment.public_id}/refunds/", {}, format="json", HTTP_IDEMPOTENCY_KEY="rf-inq"
    )
    assert refund.status_code == 201, refund.json()


def test_an_evidence_file_is_kept_as_its_metadata_and_the_gateways_file_id(disputed):
    dispute = disputed()
    content = b"%PDF-1.4 a receipt"

    services.dispute_evidence_update(
        dispute=dispute,
        evidence={"customer_name": "Ada"},
        files=[EvidenceFile(field="receipt", filename="receipt.pdf", content_type="application/pdf", content=content)],
        submit=False,
    )

    kept = DisputeEvidenceFile.objects.get(dispute=dispute)
    assert (kept.field, kept.filename, kept.content_type, kept.size) == (
        "receipt",
        "receipt.pdf",
        "application/pdf",
        len(content),
    )
    assert kept.sha256 == hashlib.sha256(content).hexdigest()
    assert kept.gateway_file_id.startswith("file_")
    dispute.refresh_from_db()
    assert dispute.evidence == {"customer_name": "Ada"}
