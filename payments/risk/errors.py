"""Expected failures of review decisions and blocklist changes (shown to staff in the admin)."""

from config.errors import ApplicationError


class ReviewNotPending(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "review_not_pending"
    default_message = "This payment has no pending review (someone may have decided it already)."


class PaymentBlocked(ApplicationError):
    status_code = 402
    error_type = "card_error"
    default_code = "blocked"
    default_message = "The payment was blocked by our risk rules."
