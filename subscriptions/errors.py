"""Expected failures of subscriptions, rendered by the API in the error envelope."""

from config.api.errors import ApplicationError


class SubscriptionUnexpectedState(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "subscription_unexpected_state"
    default_message = "The subscription cannot do that in its current status."


class ParameterInvalid(ApplicationError):
    default_code = "parameter_invalid"
