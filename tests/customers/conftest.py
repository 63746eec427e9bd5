"""Customer fixtures: the simulator as the gateway, requests to the customers API, saved cards made through it."""

import importlib
import itertools

import pytest
from django.apps import apps as django_apps

from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


def put_customer(client, customer_id: str = "cus_42", **body):
    return client.put(f"/api/v1/customers/{customer_id}/", body, format="json")


def attach(
    client,
    customer_id: str = "cus_42",
    token: str = "pm_card_visa",  # noqa: S107 - a test card token
    *,
    key: str | None = None,
    **body,
):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(
        f"/api/v1/customers/{customer_id}/payment_methods/",
        {"payment_method": token, **body},
        format="json",
        **headers,
    )


def list_methods(client, customer_id: str = "cus_42"):
    return client.get(f"/api/v1/customers/{customer_id}/payment_methods/")


def new_key() -> str:
    return f"cust-key-{next(_keys)}"


@pytest.fixture
def saved_card(storefront):
    """Attach a test token to a customer through the API; returns the payment method's JSON."""

    def make(customer_id: str = "cus_42", token: str = "pm_card_visa", client=None, **body) -> dict:  # noqa: S107
        response = attach(client or storefront, customer_id, token, **body)
        assert response.status_code == 201, response.json()
        return response.json()

    return make


def create_customer_staff_groups() -> None:
    """The staff groups with every permission the migrations give them, the customers' grants included (a flush
    by a transactional test empties them)."""
    from tests.e2e.conftest import create_staff_groups

    create_staff_groups()
    importlib.import_module("customers.migrations.0002_staff_permissions").grant_permissions(django_apps, None)
