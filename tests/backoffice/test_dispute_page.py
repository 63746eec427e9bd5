"""The dispute desk's page, composed at the top of the house: the disputed payment's risk assessment beside it."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.test import Client

from disputes.models import Dispute
from gateways.simulator import SimulatorGateway
from risk.models import RiskAssessment
from tests.accounts.factories import StaffUserFactory
from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _simulator(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


def test_the_dispute_page_shows_the_payments_risk_assessment_with_its_rules(storefront, deliver):  # noqa: F811
    body = {
        "amount": 3100,
        "currency": "usd",
        "customer_id": "cus_risky",
        "payment_method": "pm_card_createDispute",
        "confirm": True,
    }
    created = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="dispute-page-1")
    assert created.status_code == 201, created.json()
    for event in SimulatorGateway.pending_dispute_events():
        deliver(event)
    dispute = Dispute.objects.get(payment__public_id=created.json()["id"])
    assessment = RiskAssessment.objects.get(payment=dispute.payment)

    importlib.import_module("accounts.migrations.0002_staff_groups").create_groups(django_apps, None)
    importlib.import_module("disputes.migrations.0002_staff_permissions").grant_permissions(django_apps, None)
    importlib.import_module("risk.migrations.0002_defaults_and_staff_permissions").grant_permissions(django_apps, None)
    client = Client()
    client.force_login(StaffUserFactory(username="desk-agent", groups=["finance_agent"]))
    html = client.get(f"/admin/disputes/dispute/{dispute.pk}/change/").content.decode()

    assert f'id="risk-score">{assessment.score}<' in html
    assert 'id="risk-decision">' in html  # only the full assessment (from the risk app) has its decision
