"""Project-wide views."""

from django.http import HttpRequest, JsonResponse

from config.api.errors import error_response


def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Unknown URLs under /api/ answer 404 in the error envelope."""
    return error_response(404, "invalid_request_error", "resource_missing", "Unrecognized request URL.")
