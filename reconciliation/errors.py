"""Expected failures of staff closing reconciliation discrepancies."""

from config.api.errors import ApplicationError


class DiscrepancyNotOpen(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "discrepancy_not_open"
    default_message = "This discrepancy is already closed."


class ReasonRequired(ApplicationError):
    default_code = "reason_required"
    default_message = "A reason is required."
