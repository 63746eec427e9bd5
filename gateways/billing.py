"""The billing half of the gateway protocol (issue #18): prices, subscriptions and invoices, as Stripe Billing has them.

Plain dataclasses in and out, integer minor units, typed errors (`gateways.base`). The gateway's billing
engine schedules renewals and retries (dunning); this service keeps a faithful record of what it says.
Every call that changes something takes an `idempotency_key` derived from our own ids (`sub_X:create`).
`StripeGateway` and `SimulatorGateway` implement `BillingGateway` beside `Gateway`.

The simulator runs billing offline on a clock per API client (like Stripe's test clocks): a subscription
created with `test_clock=` lives on that clock (its times start at the clock's now), and
`SimulatorGateway.advance_clock(clock=..., seconds=...)` (returning the clock's new time and the events) moves it
forward, doing what falls due (trial ends, renewals, retries, expiries) and returning the Stripe-shaped
events (`dict`s as Stripe posts them: `{"id": "evt_…", "object": "event", "type", "created", "data":
{"object": …}}`) for the caller to deliver, signed, through the webhook inbox.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# Subscription and invoice statuses, as Stripe names them.
SUBSCRIPTION_STATUSES = ("incomplete", "incomplete_expired", "trialing", "active", "past_due", "unpaid", "canceled")
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
INTERVALS = ("day", "week", "month", "year")


@dataclass(frozen=True)
class PriceResult:
    """A recurring price of the gateway's catalog (Stripe: a Price with its Product)."""

    reference: str  # Stripe: price_...
    product_reference: str  # Stripe: prod_...
    product_name: str
    unit_amount: int  # minor units
    currency: str  # lowercase ISO 4217
    interval: str  # one of INTERVALS
    interval_count: int = 1
    trial_period_days: int | None = None
    active: bool = True


@dataclass(frozen=True)
class InvoiceLineResult:
    description: str
    amount: int  # minor units; negative for a proration credit
    quantity: int
    price_reference: str
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True)
class InvoiceResult:
    """What the gateway says about an invoice (Stripe: an Invoice)."""

    reference: str  # Stripe: in_...
    customer_reference: str
    subscription_reference: str  # "" for a one-off invoice
    status: str  # one of INVOICE_STATUSES
    currency: str
    amount_due: int
    amount_paid: int
    amount_remaining: int
    attempt_count: int = 0
    next_payment_attempt: datetime | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    lines: tuple[InvoiceLineResult, ...] = ()
    payment_intent_reference: str = ""  # the intent that charges it (Stripe: payment_intent), "" when none yet
    failure_code: str = ""  # the last attempt's decline code, "" when none
    hosted_invoice_url: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionResult:
    """What the gateway says about a subscription (Stripe: a Subscription, `latest_invoice` expanded)."""

    reference: str  # Stripe: sub_...
    customer_reference: str
    price_reference: str
    quantity: int
    status: str  # one of SUBSCRIPTION_STATUSES
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    default_payment_method: str = ""  # the gateway's pm_...
    latest_invoice: InvoiceResult | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


class BillingGateway(Protocol):
    """What the subscriptions app needs from the gateway's billing engine."""

    name: str

    def list_prices(self) -> Iterator[PriceResult]:
        """Every recurring price, active or not, paging as needed (for `sync_prices`)."""
        ...

    def create_price(
        self,
        *,
        product_name: str,
        unit_amount: int,
        currency: str,
        interval: str,
        interval_count: int,
        trial_period_days: int | None,
        idempotency_key: str,
    ) -> PriceResult:
        """A new product with one recurring price (finance leads create prices in the admin)."""
        ...

    def create_subscription(
        self,
        *,
        customer_reference: str,
        price_reference: str,
        quantity: int,
        default_payment_method: str,
        trial_days: int | None,
        metadata: dict[str, str],
        idempotency_key: str,
        test_clock: str = "",
    ) -> SubscriptionResult:
        """Subscribe the customer; without a trial the first invoice is charged at once, off session.

        A decline does not raise: the answer is the subscription `incomplete` with its `latest_invoice` `open`
        and the invoice's `failure_code` set (Stripe's `payment_behavior=allow_incomplete`); the caller answers
        402. A card that needs 3-D Secure also leaves it `incomplete` (`failure_code` `authentication_required`).
        An unknown or inactive price raises `Permanent`. `test_clock` names the simulator's clock (one per API
        client); the Stripe adapter ignores it.
        """
        ...

    def update_subscription(
        self,
        *,
        reference: str,
        price_reference: str | None,
        quantity: int | None,
        default_payment_method: str | None,
        metadata: dict[str, str] | None,
        idempotency_key: str,
    ) -> SubscriptionResult:
        """Change what is given (None leaves it), with the gateway's proration (`create_prorations`)."""
        ...

    def cancel_subscription(self, *, reference: str, at_period_end: bool, idempotency_key: str) -> SubscriptionResult:
        """`at_period_end`: it stays active with `cancel_at_period_end`; otherwise canceled now."""
        ...

    def retrieve_subscription(self, *, reference: str) -> SubscriptionResult: ...

    def list_subscriptions(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[SubscriptionResult]:
        """Every subscription created in [created_gte, created_lt), any status (for reconciliation)."""
        ...

    def retrieve_invoice(self, *, reference: str) -> InvoiceResult: ...

    def list_invoices(self, *, subscription_reference: str) -> Iterator[InvoiceResult]:
        """The subscription's invoices, newest first, paging as needed."""
        ...

    def pay_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        """Attempt an open invoice now (staff "retry"); a decline leaves it open with `failure_code`."""
        ...

    def mark_invoice_uncollectible(self, *, reference: str, idempotency_key: str) -> InvoiceResult: ...

    def void_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult: ...


def event(event_id: str, event_type: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    """A Stripe-shaped event as a webhook delivers it (what the simulator's clock returns)."""
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "api_version": "2024-06-20",
        "livemode": False,
        "data": {"object": obj},
    }
