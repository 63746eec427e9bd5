"""Erasure of a customer (DELETE /api/v1/customers/{id}/, finance only): the gateway's customer deleted, methods
detached, subscriptions canceled, personal data gone from every row; amounts, statuses and ids kept; the
reconciliation and the audit chain still hold; export afterwards shows nothing personal."""

import contextlib
import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import StaffAction
from customers.models import CustomerGatewayToken, PaymentMethod
from disputes.models import DisputeEvidenceFile
from payments.models import Payment
from privacy.models import CustomerErasure
from reconciliation.models import ReconciliationRun
from refunds.models import Refund
from subscriptions.models import Subscription
from tests.privacy.conftest import EMAIL, IP, NAME, PERSONAL, tables_holding
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
TODAY = datetime.now(tz=UTC).date().isoformat()


def _money(subject):
    payment = Payment.objects.get(pk=subject.payment.pk)
    refund = Refund.objects.get(public_id=subject.refund_id)
    subscription = Subscription.objects.get(public_id=subject.subscription_id)
    return {
        "payment": (payment.public_id, payment.amount, payment.currency, payment.status, payment.amount_refunded),
        "refund": (refund.public_id, refund.amount, refund.status),
        "subscription_price": (subscription.public_id, subscription.price_id, subscription.quantity),
        "gateway_reference": payment.gateway_reference,
    }


def test_erase_then_export_shows_nothing_personal_anywhere(finance, subject, simulator):
    # given a customer whose e-mail, name and IP are in rows of every kind (in clear, or encrypted at rest)
    assert (subject.customer.email, subject.payment.customer_ip) == (EMAIL, IP)
    assert EMAIL in WebhookEvent.objects.get(stripe_id="evt_erase_customer").body
    reference = CustomerGatewayToken.objects.get(customer=subject.customer).reference
    before = _money(subject)

    # when finance erases it
    response = finance.delete(f"/api/v1/customers/{subject.customer.public_id}/")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"id": subject.customer.public_id, "object": "customer", "deleted": True}
    assert tables_holding(*PERSONAL) == {}
    exported = finance.get(f"/api/v1/customers/{subject.customer.public_id}/export/")
    assert exported.status_code == 200
    text = json.dumps(exported.json()).lower()
    assert [needle for needle in PERSONAL if needle.lower() in text] == []
    # ...what is kept is the accounting record
    assert _money(subject) == {**before, "subscription_price": before["subscription_price"]}
    assert exported.json()["payments"][0]["amount"] == 2000
    assert exported.json()["payments"][0]["customer_email"] is None
    # ...the gateway's customer is gone, its cards detached, the subscription canceled now
    at_gateway = simulator.retrieve_customer(reference=reference)
    assert (at_gateway.deleted, at_gateway.email, at_gateway.name) == (True, "", "")
    assert list(PaymentMethod.objects.filter(customer=subject.customer).values_list("status", flat=True)) == [
        "detached"
    ]
    assert Subscription.objects.get(public_id=subject.subscription_id).status == "canceled"
    # ...the webhook payloads keep their ids and outcome
    kept = json.loads(WebhookEvent.objects.get(stripe_id="evt_erase_payment").body)
    assert kept == {
        "id": "evt_erase_payment",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": before["gateway_reference"], "object": "payment_intent", "status": "succeeded"}},
        "redacted": True,
    }
    assert WebhookEvent.objects.get(stripe_id="evt_erase_payment").status == "processed"
    # ...and the evidence's file is named by its field alone
    assert DisputeEvidenceFile.objects.get(dispute=subject.dispute).filename == "receipt (erased)"


def _reconcile() -> list[tuple[str, str]]:
    """Run `manage.py reconcile` over today; the (kind, gateway id) of the discrepancies it leaves open."""
    with contextlib.suppress(CommandError):  # open discrepancies: compared below
        call_command("reconcile", "--since", TODAY, "--until", TODAY, "--quiet", stdout=StringIO())
    run = ReconciliationRun.objects.order_by("-pk").first()
    return sorted(run.discrepancies.values_list("kind", "gateway_reference"))


def test_the_audit_chain_and_the_reconciliation_still_pass_after_an_erasure(finance, subject, capsys):
    # the dispute of the fixture is ours only (no webhook made it at the gateway): reconciliation reports it
    before = _reconcile()
    assert [kind for kind, _ in before] == ["dispute_missing_at_gateway"]

    assert finance.delete(f"/api/v1/customers/{subject.customer.public_id}/").status_code == 200

    call_command("audit_verify")
    assert "Audit trail intact" in capsys.readouterr().out
    edit = StaffAction.objects.get(action="edit_customer")
    assert (edit.before, edit.after) == (
        {"email": "[erased]", "name": "[erased]"},
        {"email": "[erased]", "name": "[erased]"},
    )
    erase = StaffAction.objects.get(action="erase_customer")
    assert (erase.object_id, erase.actor.username, erase.reason) == (
        subject.customer.public_id,
        "finance-a",
        "Erasure requested through the API",
    )
    assert _reconcile() == before  # nothing new: amounts, statuses and ids are what the gateway holds


def test_a_second_erasure_is_404_and_changes_nothing(finance, subject):
    assert finance.delete(f"/api/v1/customers/{subject.customer.public_id}/").status_code == 200
    actions = StaffAction.objects.count()

    again = finance.delete(f"/api/v1/customers/{subject.customer.public_id}/")

    assert again.status_code == 404
    assert again.json()["error"]["type"] == "invalid_request_error"
    assert CustomerErasure.objects.count() == 1
    assert StaffAction.objects.count() == actions


def test_a_storefront_may_neither_erase_nor_export_even_its_own_customer(storefront, subject):
    erase = storefront.delete(f"/api/v1/customers/{subject.customer.public_id}/")
    own = storefront.delete("/api/v1/customers/cus_erase/")
    export = storefront.get(f"/api/v1/customers/{subject.customer.public_id}/export/")

    assert (erase.status_code, own.status_code, export.status_code) == (403, 403, 403)
    assert CustomerErasure.objects.count() == 0
    assert Payment.objects.get(pk=subject.payment.pk).customer_email == EMAIL


def test_finance_names_a_customer_by_our_id_or_by_the_storefronts_id_with_its_client(finance, subject, make_client):
    other_shop = make_client("storefront-b")
    by_own_id_alone = finance.delete("/api/v1/customers/cus_erase/")  # a storefront's id means nothing alone
    wrong_client = finance.delete("/api/v1/customers/cus_erase/?client=storefront-b")
    unknown = finance.delete("/api/v1/customers/cu_doesnotexist/")
    finance_as_client = finance.delete("/api/v1/customers/cus_erase/?client=finance-a")
    assert [r.status_code for r in (by_own_id_alone, wrong_client, unknown, finance_as_client)] == [404] * 4
    assert other_shop.user.customers.count() == 0
    assert CustomerErasure.objects.count() == 0

    exported = finance.get("/api/v1/customers/cus_erase/export/?client=storefront-a")
    erased = finance.delete("/api/v1/customers/cus_erase/?client=storefront-a")

    assert exported.status_code == 200
    assert exported.json()["customer"]["email"] == EMAIL
    assert exported.json()["payments"][0]["customer_ip"] == IP
    assert erased.json() == {"id": subject.customer.public_id, "object": "customer", "deleted": True}


def test_export_holds_everything_about_the_customer_in_clear(finance, subject):
    exported = finance.get(f"/api/v1/customers/{subject.customer.public_id}/export/").json()

    assert exported["customer"]["email"] == EMAIL
    assert exported["customer"]["name"] == NAME
    assert [m["card"] for m in exported["payment_methods"]] == [
        {"brand": "visa", "last4": "4242", "exp_month": m["card"]["exp_month"], "exp_year": m["card"]["exp_year"]}
        for m in exported["payment_methods"]
    ]
    assert subject.payment.public_id in [p["id"] for p in exported["payments"]]
    assert all("client_secret" not in p for p in exported["payments"])
    assert [r["id"] for r in exported["refunds"]] == [subject.refund_id]
    assert [s["id"] for s in exported["subscriptions"]] == [subject.subscription_id]
    assert len(exported["invoices"]) == 1
    assert [d["id"] for d in exported["disputes"]] == [subject.dispute.public_id]
    assert {"payment.initiated", "customer.created", "payment_method.attached"} <= {
        e["type"] for e in exported["events"]
    }
    assert subject.payment.public_id in {e["subject"] for e in exported["events"]}
    assert [a["action"] for a in exported["staff_actions"]] == ["edit_customer"]
    assert exported["erasures"] == []


def test_an_erasure_the_gateway_does_not_answer_erases_nothing_and_can_be_repeated(finance, subject, monkeypatch):
    from gateways.base import GatewayUnavailable
    from gateways.simulator import SimulatorGateway

    def down(self, **kwargs):
        raise GatewayUnavailable("down")

    monkeypatch.setattr(SimulatorGateway, "delete_customer", down)
    failed = finance.delete(f"/api/v1/customers/{subject.customer.public_id}/")
    assert failed.status_code == 502
    assert Payment.objects.get(pk=subject.payment.pk).customer_email == EMAIL
    assert CustomerErasure.objects.count() == 0

    monkeypatch.undo()
    assert finance.delete(f"/api/v1/customers/{subject.customer.public_id}/").status_code == 200
    assert tables_holding(*PERSONAL) == {}
