"""Pure functions that take personal data out of stored JSON and text (no ORM): one redaction for webhook
payloads, shared by erasure and retention, and the scrubbers erasure runs over every other row.
"""

import json
import re
from collections.abc import Iterable
from typing import Any

from audit.services import ERASED

# Keys whose values are personal data wherever they appear in a stored JSON document.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "name",
        "customer_email",
        "customer_ip",
        "customer_name",
        "customer_phone",
        "customer_address",
        "customer_shipping",
        "receipt_email",
        "ip",
        "ip_address",
        "phone",
        "address",
        "billing_details",
        "billing_address",
        "shipping",
        "shipping_address",
        "shipping_details",
    }
)
MIN_NEEDLE = 3  # a shorter value (a two-letter name) would erase parts of unrelated words
KEPT_OBJECT_FIELDS = ("id", "object", "status")  # the webhook's object: which one, and the outcome it reported


def needles_of(values: Iterable[str | None]) -> list[str]:
    """The personal strings to look for in free text: non-empty, long enough, longest first."""
    return sorted({value.strip() for value in values if value and len(value.strip()) >= MIN_NEEDLE}, key=len)[::-1]


def scrub_text(text: str, needles: list[str]) -> str:
    """`text` with every occurrence of a needle (case-insensitive) replaced by ERASED."""
    for needle in needles:
        if needle.lower() in text.lower():
            text = re.sub(re.escape(needle), ERASED, text, flags=re.IGNORECASE)
    return text


def _blank(value: Any) -> Any:
    return value if value in (None, "", {}, []) else None


def scrub_json(value: Any, needles: list[str]) -> Any:
    """A JSON value with personal keys nulled (at any depth) and the needles scrubbed from every string."""
    if isinstance(value, dict):
        return {key: _blank(item) if key in PERSONAL_KEYS else scrub_json(item, needles) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_json(item, needles) for item in value]
    if isinstance(value, str):
        return scrub_text(value, needles)
    return value


def scrub_values(value: Any, needles: list[str]) -> Any:
    """A JSON value with the needles scrubbed from every string, keys left as they are (a storefront's metadata)."""
    if isinstance(value, dict):
        return {key: scrub_values(item, needles) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_values(item, needles) for item in value]
    if isinstance(value, str):
        return scrub_text(value, needles)
    return value


def scrub_changes(changes: Any, personal_fields: Iterable[str], needles: list[str]) -> Any:
    """django-auditlog's `changes` ({field: [old, new]}): personal fields' values ERASED, needles scrubbed."""
    if not isinstance(changes, dict):
        return scrub_values(changes, needles)
    personal = set(personal_fields) | PERSONAL_KEYS
    scrubbed: dict[str, Any] = {}
    for field, values in changes.items():
        if field in personal:
            scrubbed[field] = (
                [ERASED if item not in (None, "", "None") else item for item in values]
                if isinstance(values, list)
                else ERASED
            )
        else:
            scrubbed[field] = scrub_values(values, needles)
    return scrubbed


def redacted_webhook_body(body: str) -> str:
    """A webhook payload reduced to what identifies it and its outcome: the event's id, type, creation time and
    API version, and its object's id, kind and status. The rest (billing details, e-mails, addresses) is gone.

    The same whatever the payload was (an unreadable one keeps nothing), and redacting a redacted body changes
    nothing.
    """
    try:
        event = json.loads(body)
    except ValueError:
        event = {}
    if not isinstance(event, dict):
        event = {}
    data = event.get("data")
    source = data.get("object") if isinstance(data, dict) else None
    kept = {
        key: source[key]
        for key in KEPT_OBJECT_FIELDS
        if isinstance(source, dict) and isinstance(source.get(key), str | int | bool)
    }
    redacted = {
        key: event[key]
        for key in ("id", "object", "type", "created", "api_version", "livemode")
        if isinstance(event.get(key), str | int | bool)
    }
    return json.dumps({**redacted, "data": {"object": kept}, "redacted": True}, sort_keys=True)


def is_redacted(body: str) -> bool:
    try:
        event = json.loads(body)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("redacted") is True
