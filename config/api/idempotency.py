"""Idempotency plumbing of the API (IETF `Idempotency-Key` draft, Stripe's behaviour): the header and its errors.

The keys themselves (claim, store, replay) live with the rows that hold them: `payments.idempotency`.
"""

import hashlib
import json

from rest_framework.request import Request

from config.api.errors import ApplicationError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyKeyMissing(ApplicationError):
    default_code = "idempotency_key_missing"
    default_message = "This request needs an Idempotency-Key header."


class IdempotencyKeyInvalid(ApplicationError):
    default_code = "idempotency_key_invalid"
    default_message = "The Idempotency-Key header must be 1 to 255 printable ASCII characters."


class IdempotencyKeyInUse(ApplicationError):
    status_code = 409
    error_type = "idempotency_error"
    default_code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed; retry shortly."


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    error_type = "idempotency_error"
    default_code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request."


def parse_key(request: Request, *, required: bool) -> str | None:
    """Read and validate the header.

    :raises IdempotencyKeyMissing: required and absent.
    :raises IdempotencyKeyInvalid: empty, longer than 255 or not printable ASCII.
    """
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise IdempotencyKeyMissing()
        return None
    if not 1 <= len(key) <= 255 or not all(" " <= char <= "~" for char in key):
        raise IdempotencyKeyInvalid()
    return key


def request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def should_store(status: int) -> bool:
    """Responses of requests that did work: success, a decline, a state conflict."""
    return status < 400 or status in {402, 409}
