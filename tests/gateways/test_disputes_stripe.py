"""The Stripe adapter's dispute calls: what it sends Stripe and how it reads a Dispute (a fake Stripe server).

localstripe has no Disputes or Files API, so these run against a stub that answers Stripe-shaped objects by
path (a File for uploads, the Dispute otherwise) and records each request, multipart uploads included.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from gateways.base import Permanent
from gateways.disputes import EvidenceFile
from gateways.stripe import StripeGateway
from gateways.stripe.parsers import parse_dispute

API_KEY = "sk_test_disputes0123456789"

# Stripe's Dispute object (API reference, 2024-06-20), funds withdrawn.
DISPUTE: dict[str, Any] = {
    "id": "du_1MtJUT2eZvKYlo2CNaw2HvEv",
    "object": "dispute",
    "amount": 1000,
    "balance_transactions": [
        {
            "id": "txn_1",
            "object": "balance_transaction",
            "amount": -1000,
            "currency": "usd",
            "fee": 1500,
            "net": -2500,
            "type": "adjustment",
            "reporting_category": "dispute",
        }
    ],
    "charge": "ch_1AZtxr2eZvKYlo2CJDX8whov",
    "created": 1680651737,
    "currency": "usd",
    "evidence": {
        "access_activity_log": None,
        "billing_address": None,
        "cancellation_policy": None,
        "cancellation_policy_disclosure": None,
        "cancellation_rebuttal": None,
        "customer_communication": None,
        "customer_email_address": "ada@example.com",
        "customer_name": "Ada",
        "customer_purchase_ip": None,
        "customer_signature": None,
        "duplicate_charge_documentation": None,
        "duplicate_charge_explanation": None,
        "duplicate_charge_id": None,
        "enhanced_evidence": {},
        "product_description": None,
        "receipt": "file_1",
        "refund_policy": None,
        "refund_policy_disclosure": None,
        "refund_refusal_explanation": None,
        "service_date": None,
        "service_documentation": None,
        "shipping_address": None,
        "shipping_carrier": None,
        "shipping_date": None,
        "shipping_documentation": None,
        "shipping_tracking_number": None,
        "uncategorized_file": None,
        "uncategorized_text": None,
    },
    "evidence_details": {"due_by": 1682294399, "has_evidence": True, "past_due": False, "submission_count": 0},
    "is_charge_refundable": False,
    "livemode": False,
    "metadata": {"order": "o_1"},
    "payment_intent": "pi_1",
    "reason": "fraudulent",
    "status": "needs_response",
}
FILE = {"id": "file_1", "object": "file", "purpose": "dispute_evidence", "filename": "receipt.pdf"}


@dataclass
class RoutedStripe:
    """A fake Stripe: `/v1/files` answers a File, anything else `body` (with `status`); records every request."""

    url: str = ""
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: dict(DISPUTE))
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def sent(self, position: int) -> dict[str, list[str]]:
        return parse_qs(self.requests[position][3].decode())


@pytest.fixture
def stub() -> Iterator[RoutedStripe]:
    routed = RoutedStripe()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            routed.requests.append((self.command, self.path, dict(self.headers), body))
            status, answer = (200, FILE) if self.path == "/v1/files" else (routed.status, routed.body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    routed.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield routed
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def stripe_gateway(stub) -> StripeGateway:
    return StripeGateway(api_key=API_KEY, api_base=stub.url, timeout=5.0, page_size=2)


def test_a_stripe_dispute_is_read_with_its_evidence_and_the_funds_withdrawn():
    dispute = parse_dispute(DISPUTE)

    assert (dispute.reference, dispute.intent_reference, dispute.charge_reference) == (
        "du_1MtJUT2eZvKYlo2CNaw2HvEv",
        "pi_1",
        "ch_1AZtxr2eZvKYlo2CJDX8whov",
    )
    assert (dispute.amount, dispute.currency, dispute.reason, dispute.status) == (
        1000,
        "usd",
        "fraudulent",
        "needs_response",
    )
    assert dispute.evidence_due_by == datetime(2023, 4, 23, 23, 59, 59, tzinfo=UTC)
    assert (dispute.has_evidence, dispute.submission_count, dispute.is_charge_refundable) == (True, 0, False)
    assert (dispute.funds_withdrawn, dispute.funds_reinstated) == (True, False)
    assert dispute.evidence == {
        "customer_email_address": "ada@example.com",
        "customer_name": "Ada",
        "receipt": "file_1",
    }
    assert dispute.created_at == datetime.fromtimestamp(1680651737, tz=UTC)
    assert dispute.metadata == {"order": "o_1"}


def test_balance_transactions_as_ids_are_read_by_their_place_and_an_inquiry_moves_none():
    won = parse_dispute(DISPUTE | {"status": "won", "balance_transactions": ["txn_1", "txn_2"]})
    reinstated = {"id": "txn_2", "amount": 1000, "fee": 0, "type": "adjustment"}
    won_objects = parse_dispute(DISPUTE | {"balance_transactions": [*DISPUTE["balance_transactions"], reinstated]})
    inquiry = parse_dispute(DISPUTE | {"status": "warning_needs_response", "balance_transactions": []})

    assert (won.funds_withdrawn, won.funds_reinstated) == (True, True)
    assert (won_objects.funds_withdrawn, won_objects.funds_reinstated) == (True, True)
    assert (inquiry.funds_withdrawn, inquiry.funds_reinstated) == (False, False)


def test_update_uploads_the_files_first_then_sends_the_evidence_and_submit_with_the_key(stub, stripe_gateway):
    receipt = EvidenceFile(field="receipt", filename="receipt.pdf", content_type="application/pdf", content=b"%PDF-1")

    dispute = stripe_gateway.update_dispute(
        reference="du_1",
        evidence={"customer_name": "Ada", "product_description": "A lamp"},
        files=[receipt],
        submit=True,
        idempotency_key="dp_X:evidence:1",
    )

    [(upload_method, upload_path, upload_headers, upload_body), (method, path, headers, _)] = stub.requests
    assert (upload_method, upload_path, upload_headers["Idempotency-Key"]) == (
        "POST",
        "/v1/files",
        "dp_X:evidence:1:file:receipt",
    )
    assert upload_headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\ndispute_evidence\r\n' in upload_body
    assert b'name="file"; filename="receipt.pdf"' in upload_body
    assert b"%PDF-1" in upload_body
    assert (method, path, headers["Idempotency-Key"]) == ("POST", "/v1/disputes/du_1", "dp_X:evidence:1")
    sent = stub.sent(1)
    assert (sent["evidence[customer_name]"], sent["evidence[product_description]"]) == (["Ada"], ["A lamp"])
    assert (sent["evidence[receipt]"], sent["submit"]) == (["file_1"], ["true"])
    assert dispute.reference == "du_1MtJUT2eZvKYlo2CNaw2HvEv"


def test_a_draft_is_sent_with_submit_false_and_no_upload(stub, stripe_gateway):
    stripe_gateway.update_dispute(
        reference="du_1",
        evidence={"uncategorized_text": "See the receipt."},
        files=[],
        submit=False,
        idempotency_key="dp_X:evidence:2",
    )

    assert [(m, p) for m, p, _, _ in stub.requests] == [("POST", "/v1/disputes/du_1")]
    assert (stub.sent(0)["evidence[uncategorized_text]"], stub.sent(0)["submit"]) == (["See the receipt."], ["false"])


def test_unknown_evidence_is_refused_before_anything_is_sent(stub, stripe_gateway):
    with pytest.raises(Permanent) as refused:
        stripe_gateway.update_dispute(
            reference="du_1", evidence={"favourite_colour": "blue"}, files=[], submit=True, idempotency_key="k"
        )

    assert refused.value.code == "parameter_unknown"
    assert stub.requests == []


def test_stripe_refusing_an_update_after_submission_is_permanent(stub, stripe_gateway):
    stub.status = 400
    stub.body = {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_already_exists",
            "message": "This dispute has already been submitted.",
        }
    }

    with pytest.raises(Permanent) as refused:
        stripe_gateway.update_dispute(
            reference="du_1", evidence={"customer_name": "Ada"}, files=[], submit=True, idempotency_key="k"
        )

    assert refused.value.message == "This dispute has already been submitted."


def test_close_accepts_the_dispute_with_the_key(stub, stripe_gateway):
    stub.body = DISPUTE | {"status": "lost"}

    dispute = stripe_gateway.close_dispute(reference="du_1", idempotency_key="dp_X:accept")

    [(method, path, headers, _)] = stub.requests
    assert (method, path, headers["Idempotency-Key"]) == ("POST", "/v1/disputes/du_1/close", "dp_X:accept")
    assert dispute.status == "lost"


def test_retrieve_and_list_in_a_created_window(stub, stripe_gateway):
    stub.body = {"object": "list", "data": [DISPUTE], "has_more": False, "url": "/v1/disputes"}

    listed = list(
        stripe_gateway.list_disputes(
            created_gte=datetime(2023, 4, 1, tzinfo=UTC), created_lt=datetime(2023, 5, 1, 0, 0, 0, 500, tzinfo=UTC)
        )
    )
    stub.body = DISPUTE
    retrieved = stripe_gateway.retrieve_dispute(reference="du_1")

    (list_method, list_path, _, _), (method, path, _, _) = stub.requests
    assert list_method == "GET"
    query = parse_qs(list_path.split("?", 1)[1])
    assert (query["created[gte]"], query["created[lt]"], query["limit"]) == (["1680307200"], ["1682899201"], ["2"])
    assert [dispute.reference for dispute in listed] == [DISPUTE["id"]]
    assert (method, path) == ("GET", "/v1/disputes/du_1")
    assert retrieved == parse_dispute(DISPUTE)


def test_an_unknown_dispute_is_permanent(stub, stripe_gateway):
    stub.status = 404
    stub.body = {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such dispute"}}

    with pytest.raises(Permanent) as refused:
        stripe_gateway.retrieve_dispute(reference="du_nope")

    assert refused.value.code == "resource_missing"
