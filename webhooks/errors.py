"""Why a webhook delivery is refused (400 in the API's error envelope; nothing is stored)."""

from config.api.errors import ApplicationError


class InvalidWebhook(ApplicationError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "signature_invalid"
    default_message = "The webhook signature is invalid."


class WebhookProcessingFailed(Exception):
    """Processing a stored event raised; the row is `failed` with the traceback and can be retried."""
