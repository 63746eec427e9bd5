"""gunicorn's own error answers in the API's JSON envelope (installed by config/gunicorn.conf.py).

gunicorn answers requests it cannot parse (a header value with a control character, an over-long
request line, more or larger headers than its limits: 400, 431, 501) before Django sees them, with an
HTML page that echoes the offending text. Every such answer goes through `gunicorn.util.write_error`;
this replacement writes the error envelope instead, with a fixed message per status: the rejected text
(which may hold a card number or a token) is never echoed.
"""

import json
from typing import Any

from gunicorn import util

_ERRORS = {
    400: ("invalid_request_error", "request_malformed", "The request is not valid HTTP (request line or headers)."),
    403: ("permission_error", "permission_denied", "The request is forbidden."),
    431: ("invalid_request_error", "headers_too_large", "The request headers are too many or too large."),
    501: ("invalid_request_error", "transfer_coding_unsupported", "The transfer coding is not supported."),
}
_INTERNAL = ("api_error", "internal_error", "An unexpected error occurred. It has been logged; please retry later.")


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    error_type, code, message = _ERRORS.get(status_int, _INTERNAL)
    body = json.dumps({"error": {"type": error_type, "code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
