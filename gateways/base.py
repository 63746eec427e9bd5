"""The gateway protocol: plain dataclasses in (integer minor units + currency), typed errors out.

Adapters never touch the ORM. Every money-moving call takes an `idempotency_key` derived from our
own ids (for example `pay_X:confirm`), so repeating a call after a timeout never charges twice.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# Intent statuses, as Stripe names them (and as our Payment statuses are named).
INTENT_STATUSES = (
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "requires_capture",
    "canceled",
    "succeeded",
)


@dataclass(frozen=True)
class IntentResult:
    """What the gateway says about a payment intent."""

    reference: str  # the gateway's id (Stripe: pi_...)
    status: str  # one of INTENT_STATUSES
    amount: int
    currency: str  # lowercase ISO 4217
    capture_method: str  # "automatic" | "manual"
    amount_capturable: int = 0
    amount_received: int = 0
    client_secret: str = ""
    payment_method: str = ""
    failure_code: str = ""
    failure_message: str = ""
    created_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    """What the gateway says about a refund."""

    reference: str  # Stripe: re_...
    intent_reference: str  # the payment intent it refunds
    status: str  # "pending" | "succeeded" | "failed" | "canceled"
    amount: int
    currency: str
    failure_reason: str = ""
    created_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class GatewayError(Exception):
    """Base of every gateway failure. `message` is safe to show to API clients."""

    def __init__(self, message: str = "", *, code: str = "") -> None:
        self.message = message or self.__class__.__doc__ or "Gateway error"
        self.code = code
        super().__init__(self.message)


class Declined(GatewayError):
    """The card was declined. `code` is the gateway's decline code (card_declined, insufficient_funds, ...)."""

    def __init__(self, message: str = "", *, code: str = "card_declined", intent: IntentResult | None = None) -> None:
        super().__init__(message or "Your card was declined.", code=code)
        self.intent = intent


class ActionRequired(GatewayError):
    """The customer must complete an action (3-D Secure) before this operation can go on."""


class Retryable(GatewayError):
    """A transient failure (network, 5xx, rate limit): repeat the same call with the same key."""


class GatewayTimeout(Retryable):
    """No answer in time: the outcome is unknown, so the same call must be repeated with the same key."""


class GatewayUnavailable(Retryable):
    """The gateway answered with a server error or refused the connection."""


class Permanent(GatewayError):
    """A failure that repeating will not fix (invalid request, authentication, unknown object)."""


class Gateway(Protocol):
    """What the services need from a payment gateway."""

    name: str

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        capture_method: str,
        payment_method: str,
        confirm: bool = False,
        metadata: dict[str, str],
        description: str,
        idempotency_key: str,
    ) -> IntentResult:
        """Create an intent; with `confirm` (and a `payment_method`), create and confirm it in one call.

        Without `confirm` the intent waits for a payment method or for confirmation. With it (Stripe:
        `PaymentIntent.create(..., confirm=True)`) the answer is the intent as it stands after confirmation:
        `requires_capture`, `succeeded`, `requires_action` (3-D Secure) or `processing`. A decline raises
        `Declined` exactly as `confirm_intent` does, with `intent` set to the intent just created (Stripe
        puts it in the error's `payment_intent`), so the caller learns its reference even then.
        """
        ...

    def confirm_intent(self, *, reference: str, payment_method: str, idempotency_key: str) -> IntentResult:
        """Confirm; a decline raises `Declined` (with the intent's state when known)."""
        ...

    def capture_intent(self, *, reference: str, amount: int | None, idempotency_key: str) -> IntentResult: ...

    def cancel_intent(self, *, reference: str, reason: str, idempotency_key: str) -> IntentResult: ...

    def retrieve_intent(self, *, reference: str) -> IntentResult: ...

    def card_fingerprint(self, *, payment_method: str) -> str:
        """The card's fingerprint (the same card gives the same value), or "" when the gateway has none."""
        ...

    def create_refund(
        self,
        *,
        intent_reference: str,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> RefundResult: ...

    def retrieve_refund(self, *, reference: str) -> RefundResult: ...

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        """Every intent created in [created_gte, created_lt), paging as needed (for reconciliation)."""
        ...

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]: ...
