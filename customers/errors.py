"""Expected failures of customers and saved methods, rendered by the API in the error envelope."""

from config.api.errors import ApplicationError


class PaymentMethodInvalid(ApplicationError):
    """A token the gateway does not know, or a `pmt_…` that is not an active method of this customer (400)."""

    default_code = "parameter_invalid"
    default_message = "payment_method is not a payment method that can be saved."
