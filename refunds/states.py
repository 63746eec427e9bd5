"""The refund state machine: pending → succeeded | failed | canceled."""

from django.db import models


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


class InvalidRefundTransition(Exception):
    def __init__(self, from_status: str, to_status: str) -> None:
        super().__init__(f"A refund cannot go from {from_status} to {to_status}.")


def check_transition(from_status: str, to_status: str) -> None:
    """:raises InvalidRefundTransition: when `to_status` may not follow `from_status`."""
    if to_status not in TRANSITIONS.get(from_status, frozenset()):
        raise InvalidRefundTransition(from_status, to_status)
