"""Request id, API body limit and the envelope for errors raised outside DRF views."""

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from config.api.errors import envelope_for_exception, error_response
from config.logging import request_id_var

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
API_PREFIX = "/api/"


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID`, else make one; expose it to logs and echo it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class ApiBodyLimitMiddleware:
    """Refuse API bodies over `API_MAX_BODY_BYTES` with 400 `body_too_large` before any parsing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX) and request.method in {"POST", "PUT", "PATCH", "DELETE"}:
            limit = settings.API_MAX_BODY_BYTES
            message = f"The request body exceeds {limit} bytes."
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                return error_response(400, "invalid_request_error", "body_too_large", message)
            try:
                body = request.body  # read once; DRF and the webhook view reuse it
            except RequestDataTooBig:
                return error_response(400, "invalid_request_error", "body_too_large", message)
            if len(body) > limit:
                return error_response(400, "invalid_request_error", "body_too_large", message)
        return self.get_response(request)


class ApiExceptionMiddleware:
    """Render exceptions from non-DRF views under /api/ in the envelope (DRF views have their handler)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        status, body, headers = envelope_for_exception(exception)
        error = body["error"]
        return error_response(status, error["type"], error["code"], error["message"], error.get("param"), headers)
