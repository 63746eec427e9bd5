"""What an event's object may hold: no secrets and no personal data (docs/api.md, "Personal data").

Each app renders its events' objects explicitly safe (`render_payment_for_event`, `customer_event_data`, …).
`event_record` checks what it is given with `unsafe_keys` as a last guard, so a renderer added later cannot
leak: strict (settings `EVENTS_STRICT_PAYLOADS`, else `DEBUG`) it refuses the event, otherwise it strips
the keys (`event_safe`) and logs an error.
"""

from typing import Any

from django.conf import settings

SCHEMA_VERSION = 1  # the version of the event object every event is written with (docs/api.md, "Events")

# Keys no event object holds, at any depth: credentials, bearer links and personal data (and the
# containers that hold it: billing and shipping details, dispute evidence).
FORBIDDEN_KEYS = frozenset(
    {
        "client_secret",
        "hosted_invoice_url",  # opens the invoice (the customer's name, e-mail and address) to whoever has it
        "email",
        "customer_email",
        "customer_email_address",
        "receipt_email",
        "ip",
        "ip_address",
        "customer_ip",
        "customer_name",
        "phone",
        "customer_phone",
        "billing_details",
        "billing_address",
        "shipping",
        "shipping_address",
        "evidence",
    }
)
# `name` is a person's name on these objects only (a product's or a plan's name is not personal data).
PERSONAL_NAME_OBJECTS = frozenset({"customer", "payment_method"})


class UnsafeEventPayload(ValueError):
    """An event's object holds a key no event may carry (a renderer leaks; fix the renderer)."""


def _is_forbidden(key: str, holder: dict[str, Any]) -> bool:
    return key in FORBIDDEN_KEYS or (key == "name" and holder.get("object") in PERSONAL_NAME_OBJECTS)


def unsafe_keys(obj: Any, path: str = "") -> list[str]:
    """The paths (`dispute.evidence`, `lines[0].email`) of the forbidden keys in `obj`, in document order."""
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            where = f"{path}.{key}" if path else str(key)
            if _is_forbidden(key, obj):
                found.append(where)
            else:
                found += unsafe_keys(value, where)
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            found += unsafe_keys(value, f"{path}[{index}]")
    return found


def event_safe(obj: Any) -> Any:
    """`obj` without its forbidden keys, at any depth (a copy; `obj` is left as it is)."""
    if isinstance(obj, dict):
        return {key: event_safe(value) for key, value in obj.items() if not _is_forbidden(key, obj)}
    if isinstance(obj, list | tuple):
        return [event_safe(value) for value in obj]
    return obj


def strict_payloads() -> bool:
    """Refuse an unsafe event (development and the tests that ask) rather than strip it (production)."""
    strict = getattr(settings, "EVENTS_STRICT_PAYLOADS", None)
    return settings.DEBUG if strict is None else bool(strict)
