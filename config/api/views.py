"""Project-wide views: the catch-all 404 under /api/, the error handlers and the CSRF failure view.

Under `/api/` every one of them answers in the error envelope; elsewhere (the admin) Django's own pages.
"""

import sys

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from config.api.errors import GENERIC_500_MESSAGE, envelope_for_exception, error_response

API_PREFIX = "/api/"


def _under_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


@extend_schema(exclude=True)  # not an endpoint: what every unknown /api/ path answers
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def api_not_found(request: Request, *args: object, **kwargs: object) -> JsonResponse:
    """Unknown URLs under /api/ answer 404 in the error envelope, whatever the method.

    A DRF view like every other /api/ endpoint (token authentication, so no CSRF check): a POST without the
    trailing slash is a 404, not a CSRF failure.
    """
    message = "Unrecognized request URL (every path ends with /)."
    return error_response(404, "invalid_request_error", "resource_missing", message)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A `SuspiciousOperation` (a Host not in ALLOWED_HOSTS, too many fields…) raised outside a view."""
    if not _under_api(request):
        return defaults.bad_request(request, exception)
    message = "The Host header is not allowed." if isinstance(exception, DisallowedHost) else "The request is invalid."
    return error_response(400, "invalid_request_error", "parameter_invalid", message)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _under_api(request):
        return defaults.permission_denied(request, exception)
    message = "You do not have permission to perform this action."
    return error_response(403, "permission_error", "permission_denied", message)


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _under_api(request):
        return defaults.page_not_found(request, exception)
    return error_response(404, "invalid_request_error", "resource_missing", "No such resource.")


def handler500(request: HttpRequest) -> HttpResponse:
    """An exception that escaped every view and middleware; a database outage among them is a 503."""
    if not _under_api(request):
        return defaults.server_error(request)
    exc = sys.exc_info()[1]  # Django calls the handler inside its `except` block
    if not isinstance(exc, Exception):
        return error_response(500, "api_error", "internal_error", GENERIC_500_MESSAGE)
    status, body, headers = envelope_for_exception(exc)
    error = body["error"]
    return error_response(status, error["type"], error["code"], error["message"], error.get("param"), headers)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """`CSRF_FAILURE_VIEW`: a CSRF refusal under /api/ is a 403 in the envelope (the API itself uses no cookies)."""
    if not _under_api(request):
        return csrf.csrf_failure(request, reason)
    message = "CSRF verification failed; the API authenticates with a bearer token, not a session."
    return error_response(403, "permission_error", "permission_denied", message)
