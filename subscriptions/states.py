"""The subscription and invoice state machines: the one place that knows which status may follow which.

The gateway's billing engine decides; these tables say which of its news may move our record (forward moves
only: a late event that would move a subscription or an invoice back is stale, and changes nothing).
"""

from django.db import models

from config.api.errors import ApplicationError


class SubscriptionStatus(models.TextChoices):
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Canceled"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    VOID = "void", "Void"


S = SubscriptionStatus
I = InvoiceStatus  # noqa: E741

TRANSITIONS: dict[str, frozenset[str]] = {
    S.INCOMPLETE: frozenset({S.ACTIVE, S.TRIALING, S.PAST_DUE, S.INCOMPLETE_EXPIRED, S.CANCELED}),
    S.TRIALING: frozenset({S.ACTIVE, S.PAST_DUE, S.UNPAID, S.INCOMPLETE, S.CANCELED}),
    S.ACTIVE: frozenset({S.PAST_DUE, S.UNPAID, S.CANCELED}),
    S.PAST_DUE: frozenset({S.ACTIVE, S.UNPAID, S.CANCELED}),
    S.UNPAID: frozenset({S.ACTIVE, S.CANCELED}),
    S.INCOMPLETE_EXPIRED: frozenset(),
    S.CANCELED: frozenset(),
}
TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
CANCELABLE = frozenset(set(TRANSITIONS) - TERMINAL)

# The event written when a subscription enters a status (every other change is `subscription.updated`).
EVENT_FOR_STATUS: dict[str, str] = {S.PAST_DUE: "subscription.past_due", S.CANCELED: "subscription.canceled"}

INVOICE_TRANSITIONS: dict[str, frozenset[str]] = {
    I.DRAFT: frozenset({I.OPEN, I.PAID, I.VOID, I.UNCOLLECTIBLE}),
    I.OPEN: frozenset({I.PAID, I.VOID, I.UNCOLLECTIBLE}),
    I.UNCOLLECTIBLE: frozenset({I.PAID, I.VOID}),
    I.PAID: frozenset(),
    I.VOID: frozenset(),
}


class InvalidSubscriptionTransition(ApplicationError):
    """The state machine does not allow this move (409 `subscription_unexpected_state`)."""

    status_code = 409
    error_type = "state_error"
    default_code = "subscription_unexpected_state"

    def __init__(self, from_status: str, to_status: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"A subscription cannot go from {from_status} to {to_status}.")


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def check_transition(from_status: str, to_status: str) -> None:
    """:raises InvalidSubscriptionTransition: when `to_status` may not follow `from_status`."""
    if not can_transition(from_status, to_status):
        raise InvalidSubscriptionTransition(from_status, to_status)


def invoice_can_transition(from_status: str, to_status: str) -> bool:
    return to_status in INVOICE_TRANSITIONS.get(from_status, frozenset())
