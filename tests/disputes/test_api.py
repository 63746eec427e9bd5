"""The disputes API: who sees which dispute, evidence and acceptance (finance), the payment's dispute fields."""

import itertools
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from disputes.models import Dispute, DisputeStatusChange
from events.models import Event
from gateways.disputes import EVIDENCE_TEXT_LIMIT
from gateways.simulator import SimulatorGateway
from refunds.models import Refund
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


_keys = itertools.count(1)


@pytest.fixture
def opened(story, deliver):
    """A chargeback delivered by webhook (created, funds withdrawn), as Stripe would send it (read-only tests)."""

    def make(payment=None, **fields):
        told = story(payment, **fields)
        created, withdrawn = told.lost()[:2]
        deliver(created)
        deliver(withdrawn)
        return Dispute.objects.get(gateway_reference=told.reference)

    return make


@pytest.fixture
def charged_back(storefront, deliver):
    """A chargeback at the simulator: a payment made with `pm_card_createDispute`, its webhooks delivered.

    Evidence and acceptance then go to the simulator's own dispute, as they would to Stripe's.
    """

    def make() -> Dispute:
        body = {
            "amount": 2000,
            "currency": "usd",
            "customer_id": "cus_chargeback",
            "payment_method": "pm_card_createDispute",
            "confirm": True,
        }
        created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"cb-{next(_keys)}")
        assert created.status_code == 201, created.json()
        for event in SimulatorGateway.pending_dispute_events():
            deliver(event)
        return Dispute.objects.get(payment__public_id=created.json()["id"])

    return make


def _calls(operation: str) -> int:
    """Calls of one dispute operation the simulator received (refused or not)."""
    return SimulatorGateway.call_count(operation)


def _evidence_at_the_gateway(dispute: Dispute) -> dict[str, str]:
    held = SimulatorGateway().retrieve_dispute(reference=dispute.gateway_reference).evidence
    return {name: value for name, value in held.items() if value}


def _evidence(client, dispute, **body):
    return client.post(f"/api/v1/disputes/{dispute.public_id}/evidence/", body, format="json")


def _error(response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["type"], error["code"]


# --- reading -----------------------------------------------------------------------------------------------
def test_a_storefront_sees_the_disputes_of_its_own_payments_and_finance_sees_all(
    opened, paid, make_client, storefront, finance
):
    ours = opened()
    other_client = make_client("storefront-b")
    theirs = opened(paid(client=other_client.user))

    listed = storefront.get("/api/v1/disputes/").json()
    assert [row["id"] for row in listed["results"]] == [ours.public_id]
    assert listed["results"][0] == storefront.get(f"/api/v1/disputes/{ours.public_id}/").json()
    assert _error(storefront.get(f"/api/v1/disputes/{theirs.public_id}/")) == (
        404,
        "invalid_request_error",
        "resource_missing",
    )
    assert storefront.get(f"/api/v1/disputes/?payment={theirs.payment.public_id}").json()["results"] == []
    assert [row["id"] for row in other_client.get("/api/v1/disputes/").json()["results"]] == [theirs.public_id]
    assert {row["id"] for row in finance.get("/api/v1/disputes/").json()["results"]} == {
        ours.public_id,
        theirs.public_id,
    }
    assert finance.get(f"/api/v1/disputes/{theirs.public_id}/").status_code == 200


def test_the_dispute_object(opened, storefront):
    dispute = opened()

    shown = storefront.get(f"/api/v1/disputes/{dispute.public_id}/").json()

    assert shown == {
        "id": dispute.public_id,
        "object": "dispute",
        "payment": dispute.payment.public_id,
        "amount": 2000,
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence_due_by": shown["evidence_due_by"],
        "has_evidence": False,
        "evidence_submitted_at": None,
        "submission_count": 0,
        "evidence": {},
        "funds_withdrawn": True,
        "funds_reinstated": False,
        "is_charge_refundable": False,
        "gateway_reference": dispute.gateway_reference,
        "created": shown["created"],
        "updated": shown["updated"],
    }
    assert shown["evidence_due_by"].endswith("Z")


def test_the_list_filters_by_payment_and_status_and_refuses_unknown_parameters(opened, storefront, deliver, story):
    first, second = opened(), opened()
    for event in story(second.payment, amount=500).lost():
        deliver(event)

    by_payment = storefront.get(f"/api/v1/disputes/?payment={first.payment.public_id}").json()["results"]
    lost = storefront.get("/api/v1/disputes/?status=lost").json()["results"]

    assert [row["id"] for row in by_payment] == [first.public_id]
    assert [(row["payment"], row["amount"]) for row in lost] == [(second.payment.public_id, 500)]
    assert _error(storefront.get("/api/v1/disputes/?stauts=lost"))[2] == "parameter_invalid"
    assert _error(storefront.get("/api/v1/disputes/?status=open"))[2] == "parameter_invalid"
    assert _error(storefront.get("/api/v1/disputes/?payment="))[2] == "parameter_invalid"


def test_the_list_costs_the_same_queries_whatever_its_length(opened, storefront):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = storefront.get("/api/v1/disputes/")
        assert response.status_code == 200
        return len(captured.captured_queries)

    opened()
    few = queries()
    for _ in range(5):
        opened()
    many = queries()

    assert few == many
    assert many <= 3, many
    assert len(storefront.get("/api/v1/disputes/").json()["results"]) == 6


def test_pages_follow_the_cursor(opened, storefront):
    made = [opened().public_id for _ in range(3)]

    first = storefront.get("/api/v1/disputes/?page_size=2").json()
    second = storefront.get(first["next"]).json()

    assert [row["id"] for row in first["results"] + second["results"]] == made[::-1]
    assert second["next"] is None


# --- evidence ---------------------------------------------------------------------------------------------
def test_evidence_saved_as_a_draft_then_submitted(charged_back, finance):
    dispute = charged_back()

    draft = _evidence(finance, dispute, evidence={"customer_name": "Ada Lovelace", "product_description": "A book"})

    assert draft.status_code == 200, draft.json()
    assert draft.json()["status"] == "needs_response"
    assert (draft.json()["has_evidence"], draft.json()["evidence_submitted_at"]) == (True, None)
    assert draft.json()["evidence"] == {"customer_name": "Ada Lovelace", "product_description": "A book"}
    assert _evidence_at_the_gateway(dispute) == {"customer_name": "Ada Lovelace", "product_description": "A book"}

    submitted = _evidence(finance, dispute, evidence={"uncategorized_text": "Delivered."}, submit=True)

    assert submitted.status_code == 200, submitted.json()
    body = submitted.json()
    assert (body["status"], body["submission_count"]) == ("under_review", 1)
    assert body["evidence_submitted_at"] is not None
    assert body["evidence"] == {
        "customer_name": "Ada Lovelace",
        "product_description": "A book",
        "uncategorized_text": "Delivered.",
    }
    assert _calls("update_dispute") == 2
    assert SimulatorGateway.calls_for_key(f"{dispute.public_id}:evidence:1") == 1
    assert SimulatorGateway.calls_for_key(f"{dispute.public_id}:evidence:2") == 1
    at_gateway = SimulatorGateway().retrieve_dispute(reference=dispute.gateway_reference)
    assert (at_gateway.status, at_gateway.submission_count) == ("under_review", 1)  # submitted there, once
    assert _evidence_at_the_gateway(dispute) == body["evidence"]
    change = DisputeStatusChange.objects.filter(dispute=dispute).last()
    assert (change.from_status, change.to_status, change.source, change.actor) == (
        "needs_response",
        "under_review",
        "api",
        finance.user,
    )
    types = list(Event.objects.filter(subject_id=dispute.public_id).values_list("type", flat=True))
    assert types == ["dispute.created", "dispute.funds_withdrawn", "dispute.updated", "dispute.updated"]


def test_evidence_after_submission_is_refused(charged_back, finance):
    dispute = charged_back()
    assert _evidence(finance, dispute, evidence={"customer_name": "Ada"}, submit=True).status_code == 200
    calls = _calls("update_dispute")

    again = _evidence(finance, dispute, evidence={"customer_name": "Grace"})

    assert _error(again) == (409, "state_error", "dispute_unexpected_state")
    assert _calls("update_dispute") == calls
    dispute.refresh_from_db()
    assert dispute.evidence == {"customer_name": "Ada"}
    assert _evidence_at_the_gateway(dispute) == {"customer_name": "Ada"}


def test_evidence_past_its_due_date_is_refused(charged_back, finance):
    dispute = charged_back()
    assert dispute.evidence_due_by is not None

    with time_machine.travel(dispute.evidence_due_by + timedelta(minutes=1)):
        later = client_for(finance.user)  # a token of that day: the one made now has expired by then
        refused = _evidence(later, dispute, evidence={"customer_name": "Ada"}, submit=True)

    assert _error(refused) == (409, "state_error", "dispute_unexpected_state")
    assert _calls("update_dispute") == 0
    dispute.refresh_from_db()
    assert (dispute.status, dispute.evidence, dispute.evidence_saves) == ("needs_response", {}, 0)


def test_evidence_of_a_closed_dispute_is_refused(charged_back, deliver, finance):
    dispute = charged_back()
    for event in SimulatorGateway().close_dispute_as(reference=dispute.gateway_reference, outcome="lost"):
        deliver(event)
    dispute.refresh_from_db()
    assert dispute.status == "lost"

    assert _error(_evidence(finance, dispute, evidence={"customer_name": "Ada"}))[:2] == (409, "state_error")
    assert _calls("update_dispute") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"evidence": {"customer_nmae": "Ada"}},
        {"evidence": {"receipt": "file_123"}},  # a file field: not text
        {"evidence": {"customer_name": 42}},
        {"evidence": ["customer_name"]},
        {"evidence": {"customer_name": "x" * (EVIDENCE_TEXT_LIMIT + 1)}},
        {"evidence": {"customer_name": "x" * 10_000, "uncategorized_text": "y" * 10_001}},
        {"submit": "yes"},
        {"evidence": {}, "extra": 1},
    ],
)
def test_invalid_evidence_is_a_400_and_calls_nothing(charged_back, finance, body):
    dispute = charged_back()

    refused = finance.post(f"/api/v1/disputes/{dispute.public_id}/evidence/", body, format="json")

    assert _error(refused) == (400, "invalid_request_error", "parameter_invalid")
    assert _calls("update_dispute") == 0


def test_evidence_over_the_limit_with_what_is_saved_is_a_400(charged_back, finance):
    dispute = charged_back()
    assert _evidence(finance, dispute, evidence={"uncategorized_text": "x" * 15_000}).status_code == 200

    refused = _evidence(finance, dispute, evidence={"product_description": "y" * 5_001})

    assert _error(refused) == (400, "invalid_request_error", "parameter_invalid")
    assert _calls("update_dispute") == 1


def test_a_storefront_cannot_answer_disputes_even_its_own(charged_back, storefront):
    dispute = charged_back()

    evidence = _evidence(storefront, dispute, evidence={"customer_name": "Ada"}, submit=True)
    accept = storefront.post(f"/api/v1/disputes/{dispute.public_id}/accept/", format="json")

    assert _error(evidence) == (403, "permission_error", "permission_denied")
    assert _error(accept) == (403, "permission_error", "permission_denied")
    assert (_calls("update_dispute"), _calls("close_dispute")) == (0, 0)
    dispute.refresh_from_db()
    assert dispute.status == "needs_response"


def test_answering_an_unknown_dispute_is_a_404(finance):
    assert _error(finance.post("/api/v1/disputes/dp_nope/accept/", format="json"))[0] == 404
    assert _error(finance.post("/api/v1/disputes/dp_nope/evidence/", {}, format="json"))[0] == 404
    assert (_calls("update_dispute"), _calls("close_dispute")) == (0, 0)


# --- accepting ----------------------------------------------------------------------------------------------
def test_accepting_a_dispute_closes_it_as_lost(charged_back, finance):
    dispute = charged_back()

    accepted = finance.post(f"/api/v1/disputes/{dispute.public_id}/accept/", format="json")

    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["status"] == "lost"
    assert _calls("close_dispute") == 1
    assert SimulatorGateway.calls_for_key(f"{dispute.public_id}:accept") == 1
    assert SimulatorGateway().retrieve_dispute(reference=dispute.gateway_reference).status == "lost"
    assert Event.objects.filter(subject_id=dispute.public_id, type="dispute.closed").count() == 1
    change = DisputeStatusChange.objects.filter(dispute=dispute).last()
    assert (change.to_status, change.actor, change.reason) == ("lost", finance.user, "accepted")

    again = finance.post(f"/api/v1/disputes/{dispute.public_id}/accept/", format="json")

    assert _error(again) == (409, "state_error", "dispute_unexpected_state")
    assert _calls("close_dispute") == 1


# --- the payment ---------------------------------------------------------------------------------------------
def test_the_payment_object_shows_what_is_disputed(opened, storefront, paid):
    untouched = paid()
    assert storefront.get(f"/api/v1/payments/{untouched.public_id}/").json()["disputed"] is False
    dispute = opened()

    shown = storefront.get(f"/api/v1/payments/{dispute.payment.public_id}/").json()
    listed = {row["id"]: row for row in storefront.get("/api/v1/payments/").json()["results"]}

    assert (shown["amount_disputed"], shown["disputed"]) == (2000, True)
    assert (listed[untouched.public_id]["amount_disputed"], listed[untouched.public_id]["disputed"]) == (0, False)
    assert listed[dispute.payment.public_id] == shown


def test_a_won_dispute_still_shows_the_payment_disputed_with_nothing_disputed(story, deliver, storefront):
    told = story()
    for event in told.won():
        deliver(event)

    shown = storefront.get(f"/api/v1/payments/{told.payment.public_id}/").json()

    assert (shown["amount_disputed"], shown["disputed"]) == (0, True)


def _refund(client, payment, amount=None):
    body = {} if amount is None else {"amount": amount}
    return client.post(
        f"/api/v1/payments/{payment.public_id}/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"rf-{amount}"
    )


def test_a_disputed_payment_cannot_be_refunded_beyond_what_the_dispute_leaves(opened, paid, storefront):
    payment = paid(amount=5000)
    opened(payment, amount=2000)

    too_much = _refund(storefront, payment, 3001)
    allowed = _refund(storefront, payment, 3000)

    assert _error(too_much) == (400, "invalid_request_error", "amount_too_large")
    assert allowed.status_code == 201, allowed.json()
    assert list(Refund.objects.filter(payment=payment).values_list("amount", flat=True)) == [3000]


def test_a_fully_disputed_payment_cannot_be_refunded_at_all(opened, storefront):
    dispute = opened()

    refused = _refund(storefront, dispute.payment)

    assert _error(refused) == (400, "invalid_request_error", "amount_too_large")
    assert Refund.objects.count() == 0


def test_an_inquiry_leaves_the_charge_refundable(story, deliver, storefront):
    told = story()
    deliver(told.event("created", "warning_needs_response"))

    refunded = _refund(storefront, told.payment, 2000)

    assert refunded.status_code == 201, refunded.json()
