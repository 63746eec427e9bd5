"""Reconciliation fixtures: a shop, a window around now, payments made through the services (simulator)."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import User
from gateways.base import IntentResult, RefundResult
from gateways.billing import SubscriptionResult
from gateways.disputes import DisputeResult
from payments.models import Payment
from payments.services import payment_create
from tests.accounts.factories import UserFactory
from tests.gateways.conftest import localstripe, localstripe_url  # noqa: F401 - localstripe fixtures, shared


@pytest.fixture
def shop(db) -> User:
    return UserFactory()


@pytest.fixture
def window() -> dict[str, datetime]:
    now = datetime.now(tz=UTC)
    return {"since": now - timedelta(hours=1), "until": now + timedelta(hours=1)}


@pytest.fixture
def pay(shop):
    """Make a payment through the service with the simulator; confirmed with a test card by default."""

    customers = itertools.count()

    def make(amount: int = 2000, currency: str = "usd", **extra) -> Payment:
        extra.setdefault("payment_method", "pm_card_visa")
        extra.setdefault("confirm", True)
        # a customer per payment keeps these below the risk rules' velocity limits
        customer_id = f"cus_recon_{next(customers)}"
        return payment_create(client=shop, amount=amount, currency=currency, customer_id=customer_id, **extra)

    return make


@dataclass
class ListedGateway:
    """A gateway stand-in that only lists (the reconciler is the code under test)."""

    intents: list[IntentResult]
    refunds: list[RefundResult] = field(default_factory=list)
    name: str = "simulator"

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        yield from self.intents

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]:
        yield from self.refunds

    def list_subscriptions(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[SubscriptionResult]:
        yield from ()  # no billing here: the subscriptions pass finds nothing

    def list_disputes(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[DisputeResult]:
        yield from ()  # no disputes here: the disputes pass finds nothing
