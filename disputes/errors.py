"""Expected failures of disputes, rendered by the API in the error envelope."""

from config.api.errors import ApplicationError


class DisputeUnexpectedState(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "dispute_unexpected_state"
    default_message = "The dispute cannot do that in its current status."


class ParameterInvalid(ApplicationError):
    default_code = "parameter_invalid"
