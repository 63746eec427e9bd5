"""Dispute fixtures: Stripe-shaped disputes at each step of their lifecycle, signed deliveries."""

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from accounts.models import User
from payments.models import Payment
from tests.payments.factories import PaymentFactory
from tests.webhooks import payloads
from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline

DAY = 86_400
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


@pytest.fixture
def shop_user(storefront) -> User:
    return storefront.user


@pytest.fixture
def paid(shop_user) -> Callable[..., Payment]:
    """A succeeded payment of the storefront client (as the database holds it)."""

    def make(*, client: User | None = None, amount: int = 2000, **fields: Any) -> Payment:
        return PaymentFactory(succeeded=True, client=client or shop_user, amount=amount, **fields)

    return make


def transaction(amount: int) -> dict[str, Any]:
    return {"id": f"txn_{secrets.token_hex(8)}", "object": "balance_transaction", "amount": amount, "fee": 1500}


@dataclass
class Story:
    """One dispute of a payment, as Stripe's object stands after each step (each an event of its own)."""

    payment: Payment
    reference: str = field(default_factory=lambda: f"du_test_{next(_ids)}")
    charge: str = field(default_factory=lambda: f"ch_test_{next(_ids)}")
    amount: int = 2000
    due_by: int = field(default_factory=lambda: int(time.time()) + 7 * DAY)

    def object(self, status: str, **changes: Any) -> dict[str, Any]:
        """The Dispute (https://docs.stripe.com/api/disputes/object) in `status`, with `changes` on top."""
        obj = payloads.dispute(intent=self.payment.gateway_reference or "", amount=self.amount)
        obj.update(
            id=self.reference,
            charge=self.charge,
            status=status,
            is_charge_refundable=status.startswith("warning_"),
            balance_transactions=[],
        )
        obj["evidence_details"]["due_by"] = self.due_by
        for name, value in changes.items():
            if name in ("has_evidence", "submission_count", "due_by"):
                obj["evidence_details"][name] = value
            else:
                obj[name] = value
        return obj

    def event(self, event_type: str, status: str, **changes: Any) -> dict[str, Any]:
        return payloads.event(f"charge.dispute.{event_type}", self.object(status, **changes))

    def won(self) -> list[dict[str, Any]]:
        """created → funds_withdrawn → updated (evidence submitted) → closed (won) → funds_reinstated."""
        withdrawn = [transaction(-self.amount)]
        submitted = {"has_evidence": True, "submission_count": 1}
        return [
            self.event("created", "needs_response"),
            self.event("funds_withdrawn", "needs_response", balance_transactions=withdrawn),
            self.event("updated", "under_review", balance_transactions=withdrawn, **submitted),
            self.event("closed", "won", balance_transactions=withdrawn, **submitted),
            self.event(
                "funds_reinstated", "won", balance_transactions=[*withdrawn, transaction(self.amount)], **submitted
            ),
        ]

    def lost(self) -> list[dict[str, Any]]:
        """created → funds_withdrawn → closed (lost)."""
        withdrawn = [transaction(-self.amount)]
        return [
            self.event("created", "needs_response"),
            self.event("funds_withdrawn", "needs_response", balance_transactions=withdrawn),
            self.event("closed", "lost", balance_transactions=withdrawn),
        ]


@pytest.fixture
def story(paid) -> Callable[..., Story]:
    def make(payment: Payment | None = None, **fields: Any) -> Story:
        return Story(payment=payment or paid(), **fields)

    return make
