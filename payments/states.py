"""The payment state machine: the one place that knows which status may follow which."""

from django.db import models

from config.api.errors import ApplicationError


class PaymentStatus(models.TextChoices):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method", "Requires payment method"
    REQUIRES_CONFIRMATION = "requires_confirmation", "Requires confirmation"
    REQUIRES_ACTION = "requires_action", "Requires action"
    PROCESSING = "processing", "Processing"
    REQUIRES_CAPTURE = "requires_capture", "Requires capture"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    CANCELED = "canceled", "Canceled"
    FAILED = "failed", "Failed"


S = PaymentStatus

_BEFORE_AUTHORIZATION = {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.PROCESSING}

# Forward moves only, in the natural order of API.md. Refund statuses may repeat
# (partially_refunded -> partially_refunded on a second partial refund).
TRANSITIONS: dict[str, frozenset[str]] = {
    S.REQUIRES_PAYMENT_METHOD: frozenset(
        {
            S.REQUIRES_CONFIRMATION,
            S.REQUIRES_ACTION,
            S.PROCESSING,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELED,
        }
    ),
    S.REQUIRES_CONFIRMATION: frozenset(
        {S.REQUIRES_ACTION, S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}
    ),
    S.REQUIRES_ACTION: frozenset({S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.PROCESSING: frozenset({S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.REQUIRES_CAPTURE: frozenset({S.SUCCEEDED, S.CANCELED, S.FAILED}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.CANCELED: frozenset(),
    S.FAILED: frozenset(),
}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
CANCELABLE = frozenset(_BEFORE_AUTHORIZATION | {S.REQUIRES_CAPTURE})
CONFIRMABLE = frozenset({S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION})
CAPTURED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})
# Entering these ends a review hold: the payment can no longer be captured.
ENDS_REVIEW = frozenset({S.CANCELED, S.FAILED})
# Money was received and not all of it refunded yet.
REFUNDABLE = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED})
# A held payment that is rejected (or expires in review) is canceled from these; later ones have moved on.
CANCELABLE_AFTER_REVIEW = frozenset(
    {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE}
)
# Statuses where we are only waiting for the gateway: moving them forward to what it says is safe
# (reconciliation --fix applies it; everything else stays for staff).
SAFE_TO_FIX = frozenset({S.PROCESSING, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE})

# The event written when a payment enters a status.
EVENT_FOR_STATUS: dict[str, str] = {
    S.REQUIRES_PAYMENT_METHOD: "payment.initiated",
    S.REQUIRES_CONFIRMATION: "payment.initiated",
    S.REQUIRES_ACTION: "payment.requires_action",
    S.PROCESSING: "payment.processing",
    S.REQUIRES_CAPTURE: "payment.authorized",
    S.SUCCEEDED: "payment.captured",
    S.PARTIALLY_REFUNDED: "payment.refunded",
    S.REFUNDED: "payment.refunded",
    S.CANCELED: "payment.canceled",
    S.FAILED: "payment.failed",
}


class InvalidTransition(ApplicationError):
    """The state machine does not allow this move (a 409 if it ever reaches the API)."""

    status_code = 409
    error_type = "state_error"
    default_code = "payment_unexpected_state"

    def __init__(self, from_status: str, to_status: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"A payment cannot go from {from_status} to {to_status}.")


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def check_transition(from_status: str, to_status: str) -> None:
    """:raises InvalidTransition: when `to_status` may not follow `from_status`."""
    if not can_transition(from_status, to_status):
        raise InvalidTransition(from_status, to_status)


def is_forward(from_status: str, to_status: str) -> bool:
    """True when moving to `to_status` is progress (used to ignore stale gateway news)."""
    return from_status != to_status and can_transition(from_status, to_status)


def as_gateway_names(status: str) -> str:
    """Our status as the gateway would name it: refunds are ours to track, the intent stays succeeded."""
    if status in {S.PARTIALLY_REFUNDED, S.REFUNDED}:
        return S.SUCCEEDED
    if status == S.REQUIRES_CONFIRMATION:  # Stripe says requires_payment_method until a method is attached
        return S.REQUIRES_PAYMENT_METHOD
    return status


def from_gateway_status(status: str, *, failure_code: str = "") -> str:
    """The gateway's intent status as ours would name it (a declined attempt is our `failed`)."""
    if status in {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION}:
        return S.FAILED if failure_code else S.REQUIRES_PAYMENT_METHOD
    return status


def is_safe_to_fix(our_status: str, gateway_status: str, *, failure_code: str = "") -> bool:
    """Whether reconciliation may move a payment to what the gateway says without a person deciding."""
    return our_status in SAFE_TO_FIX and is_forward(
        our_status, from_gateway_status(gateway_status, failure_code=failure_code)
    )


def is_stuck(*, status: str, pending_operation: str, needs_attention: bool) -> bool:
    """Whether a payment has a gateway operation left to finish (or was flagged for staff)."""
    return bool(pending_operation or needs_attention or status == S.PROCESSING)
