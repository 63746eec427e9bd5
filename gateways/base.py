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


@dataclass(frozen=True)
class CustomerResult:
    """What the gateway keeps for a customer (Stripe: a Customer)."""

    reference: str  # Stripe: cus_...
    email: str = ""
    name: str = ""
    default_payment_method: str = ""  # the gateway's pm_... (Stripe: invoice_settings.default_payment_method)
    metadata: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class CardDetails:
    """The only card data this service ever holds: nothing that can charge or identify the card number."""

    brand: str  # visa, mastercard, amex, discover, jcb, diners, unionpay, unknown
    last4: str
    exp_month: int
    exp_year: int
    funding: str = "unknown"  # credit, debit, prepaid, unknown
    country: str = ""  # ISO 3166-1 alpha-2, "" when unknown
    fingerprint: str = ""  # the same card number gives the same value (per gateway account)


@dataclass(frozen=True)
class PaymentMethodResult:
    """What the gateway says about a saved payment method (Stripe: a PaymentMethod)."""

    reference: str  # Stripe: pm_...
    type: str  # "card"
    customer_reference: str = ""  # "" when not attached (or detached)
    card: CardDetails | None = None
    created_at: datetime | None = None


# Setup intent statuses, as Stripe names them.
SETUP_INTENT_STATUSES = (
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "processing",
    "canceled",
    "succeeded",
)


@dataclass(frozen=True)
class SetupIntentResult:
    """What the gateway says about a setup intent (saving a card for later off-session use)."""

    reference: str  # Stripe: seti_...
    status: str  # one of SETUP_INTENT_STATUSES
    customer_reference: str
    client_secret: str = ""
    payment_method: str = ""  # the gateway's pm_... once one is set
    created_at: datetime | None = None


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
        customer: str = "",
        off_session: bool = False,
        setup_future_usage: str = "",
    ) -> IntentResult:
        """Create an intent; with `confirm` (and a `payment_method`), create and confirm it in one call.

        `customer` is the gateway's customer (cus_...) when the payment method is one of its saved ones or is
        to be saved (`setup_future_usage="off_session"`: saved on success). `off_session=True` (with `confirm`)
        is a merchant-initiated charge with no customer present: a card that needs authentication raises
        `Declined(code="authentication_required")` instead of answering `requires_action`.

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

    # --- customers and saved payment methods -------------------------------------------------------------
    def create_customer(
        self, *, email: str, name: str, metadata: dict[str, str], idempotency_key: str
    ) -> CustomerResult: ...

    def update_customer(
        self,
        *,
        reference: str,
        email: str,
        name: str,
        metadata: dict[str, str],
        default_payment_method: str | None,
        idempotency_key: str,
    ) -> CustomerResult:
        """Set the fields given; `default_payment_method` None leaves it, "" unsets it, pm_... sets it."""
        ...

    def retrieve_customer(self, *, reference: str) -> CustomerResult:
        """The customer; a deleted one comes back with `deleted=True` (raises `Permanent` when unknown)."""
        ...

    def delete_customer(self, *, reference: str, idempotency_key: str) -> CustomerResult:
        """Delete the customer at the gateway (its payment methods are detached there)."""
        ...

    def create_setup_intent(
        self,
        *,
        customer_reference: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str = "",
        confirm: bool = False,
    ) -> SetupIntentResult:
        """A setup intent for off-session use. Without `confirm` it waits for Stripe.js (`client_secret`); with
        `confirm` and a `payment_method` it is confirmed at once (a card needing 3-D Secure answers
        `requires_action`; a decline raises `Declined`)."""
        ...

    def retrieve_setup_intent(self, *, reference: str) -> SetupIntentResult: ...

    def attach_payment_method(
        self, *, payment_method: str, customer_reference: str, idempotency_key: str
    ) -> PaymentMethodResult:
        """Attach a token (pm_...) to the customer. The answer's `reference` is the saved method's id, which may
        differ from the token (a Stripe test token such as pm_card_visa is cloned). A card the gateway
        refuses to save raises `Declined`; an unknown token raises `Permanent`."""
        ...

    def detach_payment_method(self, *, payment_method: str, idempotency_key: str) -> PaymentMethodResult: ...

    def retrieve_payment_method(self, *, payment_method: str) -> PaymentMethodResult: ...

    def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
        """The customer's attached card payment methods, paging as needed (for reconciliation)."""
        ...
