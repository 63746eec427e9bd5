"""JSON log lines with a request id (and the trace, when tracing is on), and a filter masking card numbers and secrets.

Masked in the message, its arguments, every extra and the exception text: card numbers, Stripe keys and
Authorization values (config/security.py); the value of every configured secret wherever it appears (the
settings read through `_secret`: SECRET_KEY, JWT_SIGNING_KEY, the Stripe keys, ENCRYPTION_KEYS, BLIND_INDEX_KEY,
the database and broker passwords); the password of any `scheme://user:password@host` URL; and whatever a
secret's name labels: a dict key or an extra named like one (`password`, `otp_token`, `client_secret`,
`encryption_keys`, `bin_key`…), `name=value` (a form body: `otp_token=123456`) and `"name": "value"` in text.

Tracing (config/tracing.py): a line written inside a span (a request, a Celery task) carries the span's
`trace_id` (32 hex digits) and `span_id` (16), as the trace backend shows them. Without a span (tracing
off, or a line written outside any request or task) the two fields are left out.
"""

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from opentelemetry import trace

from config.security import MASK, mask_sensitive
from config.tracing import REQUEST_SPAN_CONTEXT_ATTR

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
# The trace fields are hex ids: never masked (a run of 13+ digits in one can pass the card-number check).
_TRACE_FIELDS = ("trace_id", "span_id")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    *_TRACE_FIELDS,
}
_NOT_LOGGED = {"request"}  # the request object: its id is logged, its repr would only add noise


class RequestIdFilter(logging.Filter):
    """Attach the current request id (or None outside a request) and the current span's ids to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs the response after the middleware chain has returned, so read the
        # id from the request the record carries before falling back to the context variable.
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or request_id_var.get()
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:  # the request's span has ended already: the tracing hook kept its ids
            span_context = getattr(request, REQUEST_SPAN_CONTEXT_ATTR, None) or span_context
        if span_context.is_valid:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        return True


# What a secret is called: a key, or a label in text; `[prefix_]name` (client_secret, refresh_token,
# stripe_secret_key, otp_token). Not "key" alone: an idempotency key or a cache key is no secret.
_CONFIDENTIAL_NAMES = (
    r"(?:[a-z0-9]+[_-])*(?:password|passwd|secret|token|csrftoken|csrfmiddlewaretoken|sessionid|secret[_-]key"
    r"|signing[_-]key|api[_-]key|private[_-]key|encryption[_-]keys?|blind[_-]index[_-]key|bin[_-]key|otp[_-]device)"
)
_SECRET_KEY_NAME = re.compile(rf"(?i){_CONFIDENTIAL_NAMES}")
_LABELLED_SECRET = re.compile(rf"(?i)(\b{_CONFIDENTIAL_NAMES}['\"]?\s*[:=]\s*['\"]?)(?!\[REDACTED\])([^\s'\",&}}\]]+)")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)")
_URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "EVENTS_BROKER_URL")
_MIN_SECRET_LENGTH = 8  # shorter configured values (a test's) would mask ordinary words


def _url_password(url: str) -> str | None:
    match = _URL_PASSWORD.search(url or "")
    return match.group(2) if match else None


def configured_secrets() -> list[str]:
    """The values of the secrets the settings hold (longest first, so a key inside a URL goes whole)."""
    if not settings.configured:
        return []
    values = [
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "JWT_SIGNING_KEY", ""),
        getattr(settings, "STRIPE_SECRET_KEY", ""),
        getattr(settings, "STRIPE_WEBHOOK_SECRET", ""),
        getattr(settings, "BLIND_INDEX_KEY", ""),
        *getattr(settings, "ENCRYPTION_KEYS", []),
        getattr(settings, "DATABASES", {}).get("default", {}).get("PASSWORD", ""),
        *(
            _url_password(getattr(settings, name, ""))
            for name in ("REDIS_URL", "CELERY_BROKER_URL", "EVENTS_BROKER_URL")
        ),
    ]
    found = {value for value in values if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def mask_text(text: str) -> str:
    """`text` with card numbers, Stripe keys, Authorization values, configured secrets and labelled secrets masked."""
    if not text:
        return text
    text = mask_sensitive(text)
    for secret in configured_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _LABELLED_SECRET.sub(lambda m: m.group(1) + MASK, text)


def _is_secret_name(key: Any) -> bool:
    return isinstance(key, str) and _SECRET_KEY_NAME.fullmatch(key) is not None


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: MASK if _is_secret_name(key) else _mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(item) for item in value]
    return value


class RoutineTaskLinesFilter(logging.Filter):
    """Drop Celery's two lines per task that went well: "Task … received" and "Task … succeeded in …s".

    At the relay's and the refunds' rates they were most of a worker's log and about 8 % of its CPU (each line
    is masked and formatted as JSON). Retries, failures, rejections and everything else Celery logs still
    pass, as do the services' own lines ("Refund created", "Refund status changed"). `LOG_TASK_SUCCESS=true`
    keeps the two lines.
    """

    def __init__(self) -> None:
        super().__init__()
        from celery.app import trace as celery_trace

        self._routine = {celery_trace.LOG_RECEIVED, celery_trace.LOG_SUCCESS}

    def filter(self, record: logging.LogRecord) -> bool:
        return settings.LOG_TASK_SUCCESS or record.msg not in self._routine


class SensitiveDataFilter(logging.Filter):
    """Mask card-number-like digit runs, Stripe secrets and Authorization values in every record.

    The message is rendered with its arguments first so that a secret passed as an argument is
    masked too; extras and the exception text are masked as well.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED:
                setattr(record, key, MASK if _is_secret_name(key) else _mask_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, trace and span ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key in _TRACE_FIELDS:
            if getattr(record, key, None):
                payload[key] = getattr(record, key)
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in _NOT_LOGGED and key not in payload:
                payload[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = mask_text(record.exc_text)
        return json.dumps(payload, default=str)
