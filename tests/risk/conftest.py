"""Fixtures for the risk rules: the settings row, payments created over HTTP (at a chosen moment), a reviewer."""

import importlib
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import time_machine
from django.apps import apps as django_apps
from rest_framework.test import APIClient

from accounts.models import User
from events.models import Event
from payments.models import IdempotencyKey, Payment
from risk.defaults import DEFAULT_THRESHOLDS
from risk.models import BlocklistEntry, CurrencyThreshold, RiskAssessment, RiskSettings
from risk.services import blocklist_add
from tests.accounts.factories import StaffUserFactory
from tests.conftest import client_for
from tests.risk.factories import CurrencyThresholdFactory, RiskSettingsFactory

staff_groups_migration = importlib.import_module("accounts.migrations.0002_staff_groups")
risk_grants_migration = importlib.import_module("risk.migrations.0002_defaults_and_staff_permissions")

_keys = itertools.count(1)
BASE_BODY: dict[str, Any] = {"amount": 2000, "currency": "usd", "customer_id": "cus_1"}
USD_FIRST_SEEN = DEFAULT_THRESHOLDS["usd"][2]
# A body the default rules hold for review, for one reason only: a new customer's first large payment.
HELD: dict[str, Any] = {"amount": USD_FIRST_SEEN, "customer_id": "cus_new"}


def new_key() -> str:
    return f"risk-key-{next(_keys)}"


def post_payment(client: APIClient, *, key: str | None = None, **overrides: Any):
    """POST /api/v1/payments/ with a fresh Idempotency-Key (or the given one); returns the response."""
    body = {**BASE_BODY, **overrides}
    key = key or new_key()
    response = client.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    response.idempotency_key = key
    return response


def payment_of(response) -> Payment:
    """The payment a create response is about; a 402 names none, so find it by the request's Idempotency-Key."""
    if response.status_code == 402:
        claimed = IdempotencyKey.objects.get(key=response.idempotency_key)
        return Payment.objects.get(client=claimed.client, idempotency_key=f"idem_{claimed.pk}")
    return Payment.objects.get(public_id=response.json()["id"])


def assessment_of(response) -> RiskAssessment:
    return RiskAssessment.objects.get(payment=payment_of(response))


def codes_of(response) -> list[str]:
    return assessment_of(response).reason_codes


def event_types(public_id: str) -> list[str]:
    return list(Event.objects.filter(subject_id=public_id).order_by("sequence").values_list("type", flat=True))


@pytest.fixture
def rules(db) -> Callable[..., RiskSettings]:
    """Change the risk settings row (created with the defaults first, e.g. after a transactional flush)."""

    RiskSettingsFactory()
    return RiskSettingsFactory


@pytest.fixture
def threshold(rules) -> Callable[..., CurrencyThreshold]:
    """Change (or add) one currency's amount thresholds."""

    def change(currency: str, **fields: Any) -> CurrencyThreshold:
        return CurrencyThresholdFactory(currency=currency, **fields)

    return change


@pytest.fixture
def create(storefront, rules) -> Callable[..., Any]:
    """POST a payment as the storefront (defaults: 2000 usd for cus_1); returns the response."""

    def post(client: APIClient | None = None, *, key: str | None = None, **overrides: Any):
        return post_payment(client or storefront, key=key, **overrides)

    return post


@pytest.fixture
def create_at(storefront, rules) -> Callable[..., Any]:
    """POST a payment with the clock frozen at `moment` (a token minted then, so it is valid then)."""

    def post(moment: datetime, *, user: User | None = None, **overrides: Any):
        with time_machine.travel(moment, tick=False):
            return post_payment(client_for(user or storefront.user), **overrides)

    return post


@pytest.fixture
def reviewer(db) -> User:
    """A finance agent: the staff role that decides reviews and keeps the blocklist."""
    staff_groups_migration.create_groups(django_apps, None)  # a transactional test's flush empties them
    risk_grants_migration.grant_permissions(django_apps, None)
    return StaffUserFactory(username="agent-risk", groups=["finance_agent"])


@pytest.fixture
def block(reviewer) -> Callable[..., BlocklistEntry]:
    """Add a blocklist entry through the service, as the reviewer."""

    def add(kind: str, value: str, **kwargs: Any) -> BlocklistEntry:
        return blocklist_add(kind=kind, value=value, reason="fraud ring", actor=reviewer, **kwargs)

    return add
