"""The refund state machine: pending → succeeded | failed | canceled."""

from django.db import models

from config.api.errors import ApplicationError


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


TRANSITIONS: dict[str, frozenset[str]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
    RefundStatus.CANCELED: frozenset(),
}
EVENT_FOR_STATUS: dict[str, str] = {
    RefundStatus.SUCCEEDED: "refund.succeeded",
    RefundStatus.FAILED: "refund.failed",
    RefundStatus.CANCELED: "refund.canceled",
}


# Only a pending refund may be submitted (again) to the gateway: the key `re_X:create` makes that safe.
SUBMITTABLE = frozenset({RefundStatus.PENDING})
# Refunds that count against what is left to refund on their payment.
COMMITTED = frozenset({RefundStatus.PENDING, RefundStatus.SUCCEEDED})


class InvalidRefundTransition(ApplicationError):
    """The refund state machine does not allow this move (a 409 if it ever reaches the API)."""

    status_code = 409
    error_type = "state_error"
    default_code = "refund_unexpected_state"

    def __init__(self, from_status: str, to_status: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"A refund cannot go from {from_status} to {to_status}.")


def check_transition(from_status: str, to_status: str) -> None:
    """:raises InvalidRefundTransition: when `to_status` may not follow `from_status`."""
    if to_status not in TRANSITIONS.get(from_status, frozenset()):
        raise InvalidRefundTransition(from_status, to_status)
