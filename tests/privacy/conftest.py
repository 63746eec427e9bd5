"""Privacy fixtures: a customer with everything a customer leaves behind (a saved card, a payment with its e-mail
and IP, a refund, a subscription, a dispute with evidence, webhook payloads, a staff edit), on the simulator."""

import importlib
import json
from dataclasses import dataclass

import pytest
from django.apps import apps as django_apps
from django.db import connection

from accounts.models import User
from audit.services import staff_action_record
from customers.models import Customer
from disputes.models import Dispute, DisputeEvidenceFile
from payments.models import Payment
from tests.audit.conftest import lead, make_staff, other_lead  # noqa: F401 - staff fixtures
from tests.conftest import new_key
from tests.customers.conftest import create_customer_staff_groups, put_customer
from tests.subscriptions.conftest import prices, subscribe  # noqa: F401 - subscriptions through the API
from webhooks.models import WebhookEvent, WebhookStatus

EMAIL = "ada.lovelace@example.com"
NAME = "Ada Lovelace"
IP = "203.0.113.77"
PERSONAL = (EMAIL, NAME, IP, "ada.lovelace")


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


@pytest.fixture
def staff_groups(db) -> None:
    """The staff groups with the customers' and privacy's grants (finance leads may erase and export)."""
    create_customer_staff_groups()
    importlib.import_module("privacy.migrations.0002_staff_permissions").grant_permissions(django_apps, None)


@dataclass
class Subject:
    customer: Customer
    payment: Payment
    refund_id: str
    subscription_id: str
    dispute: Dispute
    client: User


@pytest.fixture
def subject(storefront, create_payment, subscribe, lead) -> Subject:  # noqa: F811 - the fixtures imported above
    """The storefront's customer `cus_erase`, with rows of every kind holding its e-mail, name and IP."""
    put = put_customer(storefront, "cus_erase", email=EMAIL, name=NAME, metadata={"note": f"call {NAME}"})
    assert put.status_code == 201, put.json()
    paid = create_payment(
        customer_id="cus_erase",
        customer_email=EMAIL,
        customer_ip=IP,
        payment_method="pm_card_visa",
        confirm=True,
        description=f"Order for {NAME}",
        metadata={"gift_for": NAME},
    )
    assert paid.json()["status"] == "succeeded", paid.json()
    refund = storefront.post(
        f"/api/v1/payments/{paid.json()['id']}/refunds/", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()
    )
    assert refund.status_code == 201, refund.json()
    subscription = subscribe(customer_id="cus_erase")
    assert subscription.json()["status"] == "active", subscription.json()
    payment = Payment.objects.get(public_id=paid.json()["id"])
    customer = Customer.objects.get(customer_id="cus_erase")
    dispute = Dispute.objects.create(
        client=payment.client,
        payment=payment,
        amount=1500,
        currency="usd",
        reason="fraudulent",
        status="needs_response",
        evidence={"customer_name": NAME, "customer_email_address": EMAIL, "billing_address": "1 Analytical St"},
        has_evidence=True,
        gateway_name="simulator",
        gateway_reference="du_erase_000001",
        charge_reference="ch_erase_000001",
    )
    DisputeEvidenceFile.objects.create(
        dispute=dispute,
        field="receipt",
        filename=f"receipt {NAME}.pdf",
        content_type="application/pdf",
        size=10,
        sha256="0" * 64,
        gateway_file_id="file_erase_1",
    )
    reference = put.json()["gateway_reference"]
    body = {"id": "evt_erase_customer", "object": "event", "type": "customer.updated", "created": 1700000000}
    body["data"] = {"object": {"id": reference, "object": "customer", "email": EMAIL, "name": NAME}}
    WebhookEvent.objects.create(stripe_id="evt_erase_customer", type="customer.updated", body=json.dumps(body))
    charge = {"id": payment.gateway_reference, "object": "payment_intent", "status": "succeeded"}
    charge["charges"] = {"data": [{"billing_details": {"email": EMAIL, "name": NAME}}]}
    WebhookEvent.objects.create(
        stripe_id="evt_erase_payment",
        type="payment_intent.succeeded",
        body=json.dumps({"id": "evt_erase_payment", "type": "payment_intent.succeeded", "data": {"object": charge}}),
        payment=payment,
        status=WebhookStatus.PROCESSED,
    )
    staff_action_record(
        actor=lead,
        action="edit_customer",
        object_type="customer",
        object_id=customer.public_id,
        reason="typo in the e-mail",
        before={"email": "ada.lovelace@example.org", "name": NAME},
        after={"email": EMAIL, "name": NAME},
    )
    return Subject(
        customer=customer,
        payment=payment,
        refund_id=refund.json()["id"],
        subscription_id=subscription.json()["id"],
        dispute=dispute,
        client=payment.client,
    )


def tables_holding(*needles: str) -> dict[str, list[str]]:
    """Every table of the database, read raw (each row as PostgreSQL's text), whose rows hold one of `needles`."""
    found: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT t::text FROM {quoted} t")  # noqa: S608 - a table name of our own database
            for (row,) in cursor.fetchall():
                hits = [needle for needle in needles if needle.lower() in row.lower()]
                if hits:
                    found.setdefault(table, []).extend(hits)
    return found
