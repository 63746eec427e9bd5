"""Request id (and its end callbacks), API body limit, card data refused, the error envelope outside DRF."""

import json
import re
import uuid
from collections.abc import Callable
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from config.api.errors import envelope_for_exception, error_response
from config.logging import request_id_var
from config.security import CARD_DATA_MESSAGE, contains_card_number, find_card_data
from config.tasks import request_end_callbacks

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
API_PREFIX = "/api/"


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID`, else make one; expose it to logs and echo it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        # An id holding a card number is neither adopted (logged, echoed) nor kept: CardDataMiddleware refuses it.
        sane = _VALID_REQUEST_ID.match(incoming) and not contains_card_number(incoming)
        request_id = incoming if sane else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            with request_end_callbacks():  # e.g. one outbox relay nudge for the request's commits
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


WEBHOOK_PREFIX = "/api/v1/webhooks/"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _card_data_param(request: HttpRequest) -> str | None:
    """Where the request carries a card number (`path`, a query parameter, a header, a body field), or None.

    The one detector (config/security.py) looks at the path, the query string (decoded), every header and
    the raw body (so form bodies and JSON numbers too; a JSON body is decoded to name the field, and when it
    holds `\\u` escapes). The Stripe webhook's body is Stripe's own, signed: it is not scanned.
    """
    if contains_card_number(request.path_info):
        return "path"
    if request.META.get("QUERY_STRING"):
        for key, values in request.GET.lists():
            if contains_card_number(key):
                return "query"  # the parameter's name is the card number: not echoed as `param`
            if any(contains_card_number(value) for value in values):
                return key
        # The whole query, decoded once (a `%2B` stays a `+`, so `?phone=%2B4433334949517` is a phone number).
        if contains_card_number(unquote_plus(request.META["QUERY_STRING"])):
            return "query"
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and _header_has_card_data(key, value):
            return key[5:].replace("_", "-").title()
    if request.method not in _BODY_METHODS or request.path_info.startswith(WEBHOOK_PREFIX):
        return None
    text = request.body.decode("utf-8", "replace")
    found = contains_card_number(text, url=request.content_type == "application/x-www-form-urlencoded")
    if not found and "\\u" not in text:
        return None
    try:
        return find_card_data(json.loads(text)) or ("body" if found else None)
    except (ValueError, RecursionError):
        return "body" if found else None


def _header_has_card_data(key: str, value: str) -> bool:
    if contains_card_number(value, url=key == "HTTP_REFERER"):
        return True
    if value.isascii():
        return False
    try:  # WSGI hands header bytes over as latin-1: UTF-8 digits of other scripts arrive as mojibake
        return contains_card_number(value.encode("latin-1").decode("utf-8"))
    except UnicodeError:
        return False


class CardDataMiddleware:
    """Refuse card data anywhere in an /api/ request with 400 `card_data_not_allowed`, before any view.

    The envelope names where (`param`) but never echoes the value; the request id it answers with is a new one
    when the incoming one held the card number (RequestIdMiddleware).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(API_PREFIX):
            param = _card_data_param(request)
            if param is not None:
                return error_response(400, "invalid_request_error", "card_data_not_allowed", CARD_DATA_MESSAGE, param)
        return self.get_response(request)


def _nul_param(request: HttpRequest) -> tuple[bool, str | None]:
    """(found, param): a NUL in the path or a query parameter; `param` names it (None for the path or a name)."""
    if "\x00" in request.path:
        return True, None
    if "\x00" not in request.META.get("QUERY_STRING", "") and "%00" not in request.META.get("QUERY_STRING", ""):
        return False, None
    for key, values in request.GET.lists():
        if "\x00" in key:
            return True, None
        if any("\x00" in value for value in values):
            return True, None if contains_card_number(key) else key
    return False, None


class ApiEdgeMiddleware:
    """The edges of every /api/ request and response.

    - A NUL in the path or a query parameter (`/api/v1/payments/%00/`, `?after=p%00x`) is a 400
      `parameter_invalid`: PostgreSQL cannot take it in a text value, so it would be a 500 in any filter.
      (JSON bodies: config/api/parsers.py.)
    - Every `/api/v1/` response is `Cache-Control: no-store` unless the view set a policy: payments carry
      their `client_secret`, and no API answer belongs in a shared cache.
    - A HEAD answer has no body. Django strips it only in its test client; gunicorn sends what it is given.
      Headers (Content-Length included) are those of the GET.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        found, param = _nul_param(request)
        response: HttpResponse
        if found:
            where = f"The query parameter {param}" if param else "The URL"
            message = f"{where} must not contain NUL characters."
            response = error_response(400, "invalid_request_error", "parameter_invalid", message, param)
        else:
            response = self.get_response(request)
        if request.path.startswith("/api/v1/") and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        if request.method == "HEAD":
            if isinstance(response, StreamingHttpResponse):
                response.streaming_content = []
            else:
                response.content = b""
        return response


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
