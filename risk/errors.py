"""Expected failures of the risk rules and of review decisions."""

from config.api.errors import ApplicationError


class ReviewNotPending(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "review_not_pending"
    default_message = "This payment has no pending review (someone may have decided it already)."
