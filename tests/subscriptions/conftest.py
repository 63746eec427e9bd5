"""Subscription fixtures: the simulator as the gateway, its catalog synced, the API and the billing clock."""

import itertools

import pytest
from django.core.management import call_command

from tests.customers.conftest import saved_card  # noqa: F401 - cards saved through the customers API
from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline

DAY = 86_400
_keys = itertools.count(1)


def new_key() -> str:
    return f"sub-key-{next(_keys)}"


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


@pytest.fixture
def prices(db):
    """The simulator's shipped catalog, mirrored here by `manage.py sync_prices`."""
    call_command("sync_prices", "--quiet")


@pytest.fixture
def subscribe(storefront, prices, tasks_inline, django_capture_on_commit_callbacks):
    """POST /api/v1/subscriptions/ with a fresh key (tasks run inline after commit); returns the response."""

    def create(client=None, *, key: str | None = None, **body):
        payload = {"customer_id": "cus_42", "price": "price_basic_monthly", "payment_method": "pm_card_visa", **body}
        with django_capture_on_commit_callbacks(execute=True):
            return (client or storefront).post(
                "/api/v1/subscriptions/", payload, format="json", HTTP_IDEMPOTENCY_KEY=key or new_key()
            )

    return create


@pytest.fixture
def advance(storefront, tasks_inline, django_capture_on_commit_callbacks):
    """POST /api/v1/test_helpers/advance_clock/ (webhooks delivered and processed, their tasks run inline)."""

    def move(seconds: int, client=None):
        with django_capture_on_commit_callbacks(execute=True):
            response = (client or storefront).post(
                "/api/v1/test_helpers/advance_clock/", {"seconds": seconds}, format="json"
            )
        assert response.status_code == 200, response.json()
        return response.json()["now"]

    return move
