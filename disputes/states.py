"""The dispute state machine: the one place that knows which status may follow which.

The gateway (the customer's bank, through Stripe) decides; this table says which of its news may move our
record. Stripe's lifecycle: an inquiry (`warning_needs_response`) is answered (`warning_under_review`) and
closes (`warning_closed`) or escalates to a chargeback; a chargeback (`needs_response`) is answered
(`under_review`) and ends `won` or `lost`. Closed statuses are terminal: news that our status cannot reach
(a late `created` after `closed`) is stale and changes nothing.
"""

from django.db import models

from config.api.errors import ApplicationError


class DisputeStatus(models.TextChoices):
    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry, needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry, under review"
    WARNING_CLOSED = "warning_closed", "Inquiry, closed"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"


D = DisputeStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    # an inquiry may be answered, closed, or escalated by the bank into a chargeback
    D.WARNING_NEEDS_RESPONSE: frozenset(
        {D.WARNING_UNDER_REVIEW, D.WARNING_CLOSED, D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.WON, D.LOST}
    ),
    D.WARNING_UNDER_REVIEW: frozenset({D.WARNING_CLOSED, D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.WON, D.LOST}),
    D.NEEDS_RESPONSE: frozenset({D.UNDER_REVIEW, D.WON, D.LOST}),
    D.UNDER_REVIEW: frozenset({D.WON, D.LOST}),
    D.WARNING_CLOSED: frozenset(),
    D.WON: frozenset(),
    D.LOST: frozenset(),
}
TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
OPEN = frozenset(set(TRANSITIONS) - TERMINAL)
# Evidence was sent: the bank is deciding.
UNDER_REVIEW = frozenset({D.WARNING_UNDER_REVIEW, D.UNDER_REVIEW})
# Count in the payment's `amount_disputed`: open disputes and lost ones (not a closed inquiry, not won).
COUNTS_AS_DISPUTED = frozenset({*OPEN, D.LOST})
# Hold money back from refunds when the gateway says the charge cannot be refunded (a chargeback: the
# amount is with the bank, or gone).
HOLDS_FUNDS = frozenset({D.NEEDS_RESPONSE, D.UNDER_REVIEW, D.LOST})


class InvalidDisputeTransition(ApplicationError):
    """The state machine does not allow this move (409 `dispute_unexpected_state`)."""

    status_code = 409
    error_type = "state_error"
    default_code = "dispute_unexpected_state"

    def __init__(self, from_status: str, to_status: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"A dispute cannot go from {from_status} to {to_status}.")


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def check_transition(from_status: str, to_status: str) -> None:
    """:raises InvalidDisputeTransition: when `to_status` may not follow `from_status`."""
    if not can_transition(from_status, to_status):
        raise InvalidDisputeTransition(from_status, to_status)
