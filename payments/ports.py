"""The port through which the payment core asks for a risk assessment (risk plugs in; the core never imports it).

`payment_create` calls the configured assessor explicitly, in this order: `prepare` before any
transaction (it may read settings and ask the gateway for the card's fingerprint, and names the locks
`assess` needs, which the core takes with the idempotency key's INSERT), `assess` inside the
creating transaction before the insert, `record` after the insert (same transaction). `hold_ended` is
called by the status writer when a held payment is canceled, fails or is overridden, so the assessor
can close its own record of the review.
The implementation is named by the setting `PAYMENTS_RISK_ASSESSOR` (a dotted path, like Django's
backends); `AllowAll` is the assessor of a core with no risk app.
"""

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string

from accounts.models import User
from gateways.base import Gateway
from payments.models import Payment


class Decision(models.TextChoices):
    """What an assessor may decide (the risk app stores these values too)."""

    ALLOW = "allow", "Allow"
    REVIEW = "review", "Review"
    BLOCK = "block", "Block"


@dataclass(frozen=True)
class RiskVerdict:
    """What the assessor decided: allow, review (hold for staff, manual capture) or block (fail, no gateway call)."""

    decision: str
    score: int | None = None
    level: str = ""
    reasons: tuple[str, ...] = ()  # reason codes, shown in the payment's `review`
    detail: Any = field(default=None, compare=False)  # the assessor's own record, handed back to `record`


@dataclass(frozen=True)
class RiskPreparation:
    """What the assessor gathered before the creating transaction: the card's fingerprint and its own state.

    `lock_keys`: PostgreSQL advisory locks `assess` needs held (creations sharing a customer, e-mail or IP
    counting each other). The core may take them in the creating transaction's first statement, before
    `assess`, and then says so with `RiskRequest.locks_held`; else `assess` takes them itself.
    """

    card_fingerprint: str = ""
    lock_keys: tuple[int, ...] = ()
    detail: Any = field(default=None, compare=False)  # the assessor's own (its rules), handed back in the request


class RiskPreparationStale(Exception):  # noqa: N818 - a signal to prepare again, not an error
    """Raised by `assess`: what `prepare` gathered no longer holds (a rule now needs the card's fingerprint).

    The core rolls the creating transaction back and starts again from `prepare`, once.
    """


@dataclass(frozen=True)
class RiskRequest:
    """The facts of a payment about to be created."""

    client: User
    amount: int
    currency: str
    customer_id: str
    email: str = ""
    ip: str | None = None
    card_fingerprint: str = ""
    prepared: RiskPreparation | None = None
    locks_held: bool = False  # the transaction holds `prepared.lock_keys` already


class RiskAssessor(Protocol):
    def prepare(
        self,
        *,
        gateway: Gateway,
        payment_method: str,
        currency: str,
        client: User | None = None,
        customer_id: str = "",
        email: str = "",
        ip: str | None = None,
    ) -> RiskPreparation: ...

    def assess(self, request: RiskRequest) -> RiskVerdict: ...

    def record(self, *, payment: Payment, verdict: RiskVerdict, card_fingerprint: str) -> None: ...

    def hold_ended(self, *, payment: Payment, state: str, note: str) -> None: ...


class AllowAll:
    """No risk rules: every payment is allowed."""

    def prepare(
        self,
        *,
        gateway: Gateway,
        payment_method: str,
        currency: str,
        client: User | None = None,
        customer_id: str = "",
        email: str = "",
        ip: str | None = None,
    ) -> RiskPreparation:
        return RiskPreparation()

    def assess(self, request: RiskRequest) -> RiskVerdict:
        return RiskVerdict(decision=Decision.ALLOW)

    def record(self, *, payment: Payment, verdict: RiskVerdict, card_fingerprint: str) -> None:
        return None

    def hold_ended(self, *, payment: Payment, state: str, note: str) -> None:
        return None


@cache
def _assessor(path: str) -> RiskAssessor:
    assessor: RiskAssessor = import_string(path)()
    return assessor


def risk_assessor() -> RiskAssessor:
    """The configured assessor (`PAYMENTS_RISK_ASSESSOR`)."""
    return _assessor(settings.PAYMENTS_RISK_ASSESSOR)


# --- saved payment methods (the customers app plugs in; the core never imports it) --------------------
@dataclass(frozen=True)
class SavedMethod:
    """A customer's saved method as a charge needs it: the gateway's customer and payment method."""

    customer_reference: str  # the gateway's customer (Stripe: cus_...)
    payment_method_reference: str  # the gateway's saved method (Stripe: pm_...)
    card_fingerprint: str = ""


class SavedMethodRefused(Exception):
    """The `pmt_…` is not an active saved method of this client's customer (400; the gateway is never called)."""

    def __init__(self, message: str = "payment_method is not an active saved payment method of this customer.") -> None:
        super().__init__(message)
        self.message = message


class SavedMethods(Protocol):
    """What payments need from saved methods. Every method is called outside any transaction (it may call the
    gateway); `PAYMENTS_SAVED_METHODS` names the implementation."""

    def method_for_charge(self, *, client: User, customer_id: str, payment_method: str) -> SavedMethod:
        """The active saved method `payment_method` (a `pmt_…`) of this client's customer `customer_id`.

        :raises SavedMethodRefused: unknown, another customer's or client's, or detached.
        """
        ...

    def customer_for_saving(self, *, client: User, customer_id: str) -> str:
        """The gateway customer of this client's `customer_id`, created here and at the gateway when needed (for a
        payment with `setup_future_usage`)."""
        ...

    def saved_after_payment(self, *, client: User, customer_id: str, payment_method_reference: str) -> None:
        """A payment with `setup_future_usage` succeeded and the gateway attached its card: record it (idempotent;
        the `payment_method.attached` webhook may record it first)."""
        ...


class NoSavedMethods:
    """A core without the customers app: no `pmt_…` can be charged and nothing is saved."""

    def method_for_charge(self, *, client: User, customer_id: str, payment_method: str) -> SavedMethod:
        raise SavedMethodRefused("Saved payment methods are not available.")

    def customer_for_saving(self, *, client: User, customer_id: str) -> str:
        raise SavedMethodRefused("Saved payment methods are not available.")

    def saved_after_payment(self, *, client: User, customer_id: str, payment_method_reference: str) -> None:
        return None


@cache
def _saved_methods(path: str) -> SavedMethods:
    methods: SavedMethods = import_string(path)()
    return methods


def saved_methods() -> SavedMethods:
    """The configured implementation (`PAYMENTS_SAVED_METHODS`)."""
    return _saved_methods(settings.PAYMENTS_SAVED_METHODS)
