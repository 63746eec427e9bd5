"""Reconciling through the Stripe adapter's auto-paging listing, against localstripe."""

import pytest

from gateways.stripe.client import StripeGateway
from payments.models import Payment
from reconciliation.models import RunStatus
from reconciliation.services import reconcile
from tests.gateways.conftest import API_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_settings(settings, localstripe, monkeypatch):
    # localstripe has no Disputes API (the listing is tested on a stub: tests/gateways/test_disputes_stripe.py)
    monkeypatch.setattr(StripeGateway, "list_disputes", lambda self, **window: iter(()))
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    return localstripe


def _create(client, key, **extra):
    body = {"amount": 2000, "currency": "usd", "customer_id": "cus_1", "payment_method": "pm_card_visa", **extra}
    response = client.post("/api/v1/payments/", {**body, "confirm": True}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201
    return response.json()


def test_payments_made_through_stripe_reconcile_clean_and_drift_shows_up(storefront, stripe_settings, window):
    # given: payments made through our API on Stripe (localstripe)
    _create(storefront, "r-1")
    _create(storefront, "r-2", amount=1500, capture_method="manual")
    drifted = _create(storefront, "r-3", amount=700)

    # when
    clean = reconcile(**window)

    # then
    assert clean.gateway == "stripe"
    assert (clean.status, clean.gateway_records, clean.our_records, clean.matched) == (RunStatus.CLEAN, 3, 3, 3)

    # given: one altered on our side
    Payment.objects.filter(public_id=drifted["id"]).update(amount=750)

    # when
    run = reconcile(**window)

    # then
    found = run.discrepancies.get()
    assert (found.kind, found.gateway_reference, found.state) == ("amount", drifted["gateway_reference"], "open")
    assert (found.ours["amount"], found.theirs["amount"]) == (750, 700)
    assert (run.status, run.matched) == (RunStatus.UNRESOLVED, 2)
