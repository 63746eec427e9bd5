"""The error envelope of API.md, for every error under /api/, and the base application error."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback
from rest_framework_simplejwt.exceptions import AuthenticationFailed as JwtAuthenticationFailed

from config.metrics import api_error_count

logger = logging.getLogger(__name__)

GENERIC_500_MESSAGE = "An unexpected error occurred. It has been logged; please retry later."


class ApplicationError(Exception):
    """Base for expected failures that the API renders in the envelope."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "parameter_invalid"
    default_message = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}
        super().__init__(self.message)


class RateLimited(ApplicationError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limited"
    default_message = "Too many requests; retry after the time given in Retry-After."


class ServiceUnavailable(ApplicationError):
    """A dependency the request needs (the database) does not answer: 503 with `Retry-After`."""

    status_code = 503
    error_type = "api_error"
    default_code = "service_unavailable"
    default_message = "The service is temporarily unavailable; retry after the time given in Retry-After."


SERVICE_UNAVAILABLE_RETRY_AFTER = 5  # seconds: a restart or a failover, not a long outage, is the common case


class BodyTooLarge(ApplicationError):
    default_code = "body_too_large"
    default_message = "The request body is too large."


def error_body(error_type: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": error_type, "code": code, "message": message}
    if param is not None:
        body["param"] = param
    return {"error": body}


def error_response(
    status: int, error_type: str, code: str, message: str, param: str | None = None, headers: dict | None = None
) -> JsonResponse:
    """A plain Django response in the envelope (for middleware and non-DRF views)."""
    api_error_count(code)
    response = JsonResponse(error_body(error_type, code, message, param), status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


_VALIDATION_CODES = {"required": "parameter_missing", "null": "parameter_missing"}


def _first_validation_error(detail: Any, prefix: str | None = None) -> tuple[str | None, str, str]:
    """Walk DRF's nested error detail; return (param, code, message) of the first error."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = None if key in ("non_field_errors", "__all__") else str(key)
            param = f"{prefix}[{name}]" if prefix and name else (name or prefix)
            return _first_validation_error(value, param)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    code = getattr(detail, "code", None) or "invalid"
    message = str(detail)
    if prefix and not message.lower().startswith(prefix.split("[")[0].lower()):
        message = f"{prefix}: {message}"
    mapped = _VALIDATION_CODES.get(code) or (code if code.startswith(_OWN_CODE_PREFIXES) else "parameter_invalid")
    return prefix, mapped, message


# Codes raised on purpose by our serializers pass through unchanged.
_OWN_CODE_PREFIXES = (
    "parameter_",
    "amount_",
    "currency_",
    "card_data_",
    "idempotency_",
    "body_",
    "resource_missing",  # a parameter naming an object that is not there (`after=` of the feed)
)


def _retry_after(exc: Exception) -> str:
    wait = getattr(exc, "wait", None) or getattr(exc, "retry_after", None) or 60
    return str(max(1, int(wait)))


def envelope_for_exception(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:  # noqa: C901, PLR0911
    """Map any exception to (status, body, headers). Unknown exceptions become a generic 500."""
    if isinstance(exc, ApplicationError):
        return exc.status_code, error_body(exc.error_type, exc.code, exc.message, exc.param), exc.headers
    if isinstance(exc, Ratelimited):
        headers = {"Retry-After": _retry_after(exc)}
        return 429, error_body("rate_limit_error", "rate_limited", RateLimited.default_message), headers
    if isinstance(exc, Http404 | drf.NotFound):
        return 404, error_body("invalid_request_error", "resource_missing", "No such resource."), {}
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, drf.ValidationError):
        param, code, message = _first_validation_error(exc.detail)
        return 400, error_body("invalid_request_error", code, message, param), {}
    if isinstance(exc, drf.ParseError):
        return 400, error_body("invalid_request_error", "parameter_invalid", "The body is not valid JSON."), {}
    if isinstance(exc, drf.NotAuthenticated):
        return 401, error_body("authentication_error", "not_authenticated", "Authentication required."), {}
    if isinstance(exc, JwtAuthenticationFailed | drf.AuthenticationFailed):
        if exc.get_codes() == "no_active_account":
            return 401, error_body("authentication_error", "invalid_credentials", "Invalid username or password."), {}
        return 401, error_body("authentication_error", "token_invalid", "The token is invalid or expired."), {}
    if isinstance(exc, drf.PermissionDenied):
        message = "You do not have permission to perform this action."
        return 403, error_body("permission_error", "permission_denied", message), {}
    if isinstance(exc, drf.MethodNotAllowed):
        message = str(exc.detail)
        return 405, error_body("invalid_request_error", "method_not_allowed", message), {}
    if isinstance(exc, drf.UnsupportedMediaType):
        message = "Only application/json request bodies are accepted."
        return 415, error_body("invalid_request_error", "unsupported_media_type", message), {}
    if isinstance(exc, drf.NotAcceptable):
        return 406, error_body("invalid_request_error", "not_acceptable", "Only application/json is served."), {}
    if isinstance(exc, drf.Throttled):
        headers = {"Retry-After": _retry_after(exc)}
        return 429, error_body("rate_limit_error", "rate_limited", RateLimited.default_message), headers
    if isinstance(exc, drf.APIException):
        codes = exc.get_codes()
        return (
            exc.status_code,
            error_body("api_error", codes if isinstance(codes, str) else "api_error", str(exc.detail)),
            {},
        )
    if isinstance(exc, OperationalError | InterfaceError):  # no connection, a connection lost, a failover
        logger.warning("The database is unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        headers = {"Retry-After": str(SERVICE_UNAVAILABLE_RETRY_AFTER)}
        return (
            503,
            error_body(
                ServiceUnavailable.error_type, ServiceUnavailable.default_code, ServiceUnavailable.default_message
            ),
            headers,
        )
    logger.error("Unhandled error while serving an API request", exc_info=exc)
    return 500, error_body("api_error", "internal_error", GENERIC_500_MESSAGE), {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception handler: every error, expected or not, in the envelope."""
    status, body, headers = envelope_for_exception(exc)
    api_error_count(body["error"]["code"])
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers = {**headers, "WWW-Authenticate": 'Bearer realm="api"'}
    set_rollback()
    return Response(body, status=status, headers=headers)
