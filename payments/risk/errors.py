"""Expected failures of the risk rules and of review decisions."""

from config.errors import ApplicationError
from payments.errors import CardDeclined


class ReviewNotPending(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "review_not_pending"
    default_message = "This payment has no pending review (someone may have decided it already)."


class PaymentBlocked(CardDeclined):
    """A decline of our own: whoever handles a card decline (API, order consumer) handles a block the same way."""

    default_code = "blocked"
    default_message = "The payment was blocked by our risk rules."
