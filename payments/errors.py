"""Expected payment failures, rendered by the API in the error envelope."""

from config.api.errors import ApplicationError


class PaymentUnexpectedState(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "payment_unexpected_state"
    default_message = "The payment is not in a state that allows this operation."


class PaymentInReview(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "payment_in_review"
    default_message = "The payment is held for manual review."


class CardDeclined(ApplicationError):
    status_code = 402
    error_type = "card_error"
    default_code = "card_declined"
    default_message = "Your card was declined."


class PaymentBlocked(CardDeclined):
    """Our own risk check blocked it: a decline to every caller (API, order consumer), with no gateway call."""

    default_code = "blocked"
    default_message = "The payment was blocked by our risk rules."


class GatewayTimeoutError(ApplicationError):
    status_code = 502
    error_type = "gateway_error"
    default_code = "gateway_timeout"
    default_message = "The payment gateway did not answer in time. The operation will be completed; retry later."


class GatewayUnavailableError(ApplicationError):
    status_code = 502
    error_type = "gateway_error"
    default_code = "gateway_unavailable"
    default_message = "The payment gateway is unavailable. The operation will be retried; retry later."


class GatewayRejected(ApplicationError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "gateway_rejected"
    default_message = "The payment gateway rejected the request."


class AmountTooLarge(ApplicationError):
    default_code = "amount_too_large"
    default_message = "The amount is larger than allowed."


class SavedMethodInvalid(ApplicationError):
    """A `pmt_…` that this client's customer cannot be charged with (never sent to the gateway)."""

    default_code = "parameter_invalid"
    default_message = "payment_method is not an active saved payment method of this customer."

    def __init__(self, message: str = "", *, param: str = "payment_method") -> None:
        super().__init__(message or self.default_message, param=param)
