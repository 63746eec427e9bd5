"""Erasure on the Stripe adapter against localstripe: the Stripe customer is deleted and its cards detached."""

import pytest

from customers.models import CustomerGatewayToken, PaymentMethod
from tests.customers.test_localstripe import on_stripe  # noqa: F401 - PAYMENTS_GATEWAY=stripe on localstripe
from tests.gateways.conftest import localstripe, localstripe_url  # noqa: F401 - localstripe fixtures
from tests.privacy.conftest import EMAIL, tables_holding

pytestmark = pytest.mark.django_db


def test_an_erased_customer_is_gone_from_stripe(storefront, finance, on_stripe):  # noqa: F811
    put = storefront.put("/api/v1/customers/cus_ls/", {"email": EMAIL, "name": "Ada Lovelace"}, format="json")
    assert put.status_code == 201, put.content
    reference = put.json()["gateway_reference"]
    card = storefront.post(
        "/api/v1/customers/cus_ls/payment_methods/", {"payment_method": "pm_card_visa"}, format="json"
    )
    assert card.status_code == 201, card.content

    erased = finance.delete(f"/api/v1/customers/{put.json()['id']}/")

    assert erased.status_code == 200, erased.content
    at_stripe = on_stripe.client.v1.customers.retrieve(reference)
    assert at_stripe.to_dict().get("deleted") is True
    assert on_stripe.client.v1.payment_methods.retrieve(card.json()["gateway_reference"]).customer is None
    assert PaymentMethod.objects.get().status == "detached"
    assert not CustomerGatewayToken.objects.exists()
    assert tables_holding(EMAIL, "Ada Lovelace") == {}
