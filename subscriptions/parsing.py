"""Stripe's Subscription and Invoice objects (as webhooks deliver them) read into the gateway's billing results."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateways.billing import InvoiceLineResult, InvoiceResult, SubscriptionResult


def _id(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def _when(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def _metadata(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in value.items()} if isinstance(value, Mapping) else {}


def _items(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = data.get("items")
    listed = items.get("data") if isinstance(items, Mapping) else None
    return [item for item in listed or [] if isinstance(item, Mapping)]


def parse_subscription(data: Mapping[str, Any]) -> SubscriptionResult:
    """A Stripe Subscription; its period is on the object (older API versions) or on its first item (newer)."""
    items = _items(data)
    first: Mapping[str, Any] = items[0] if items else {}
    price = first.get("price") or data.get("plan") or {}
    start = data.get("current_period_start") or first.get("current_period_start")
    end = data.get("current_period_end") or first.get("current_period_end")
    latest = data.get("latest_invoice")
    return SubscriptionResult(
        reference=str(data["id"]),
        customer_reference=_id(data.get("customer")),
        price_reference=_id(price),
        quantity=int(first.get("quantity") or data.get("quantity") or 1),
        status=str(data["status"]),
        current_period_start=_when(start) or datetime.fromtimestamp(0, tz=UTC),
        current_period_end=_when(end) or datetime.fromtimestamp(0, tz=UTC),
        trial_start=_when(data.get("trial_start")),
        trial_end=_when(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        canceled_at=_when(data.get("canceled_at")),
        default_payment_method=_id(data.get("default_payment_method")),
        latest_invoice=parse_invoice(latest) if isinstance(latest, Mapping) else None,
        metadata=_metadata(data.get("metadata")),
        created_at=_when(data.get("created")),
    )


def latest_invoice_reference(data: Mapping[str, Any]) -> str:
    return _id(data.get("latest_invoice"))


def _line(data: Mapping[str, Any]) -> InvoiceLineResult:
    period = data.get("period") or {}
    price = data.get("price") or (data.get("pricing") or {}).get("price_details", {}).get("price") or ""
    return InvoiceLineResult(
        description=str(data.get("description") or ""),
        amount=int(data.get("amount") or 0),
        quantity=int(data.get("quantity") or 1),
        price_reference=_id(price),
        period_start=_when(period.get("start")) or datetime.fromtimestamp(0, tz=UTC),
        period_end=_when(period.get("end")) or datetime.fromtimestamp(0, tz=UTC),
    )


def parse_invoice(data: Mapping[str, Any]) -> InvoiceResult:
    lines = data.get("lines")
    listed = lines.get("data") if isinstance(lines, Mapping) else None
    error = data.get("last_payment_error") or data.get("last_finalization_error") or {}
    failure = str(data.get("failure_code") or (error.get("code") if isinstance(error, Mapping) else "") or "")
    return InvoiceResult(
        reference=str(data["id"]),
        customer_reference=_id(data.get("customer")),
        subscription_reference=_id(data.get("subscription")),
        status=str(data.get("status") or "draft"),
        currency=str(data.get("currency") or "").lower(),
        amount_due=int(data.get("amount_due") or 0),
        amount_paid=int(data.get("amount_paid") or 0),
        amount_remaining=int(data.get("amount_remaining") or 0),
        attempt_count=int(data.get("attempt_count") or 0),
        next_payment_attempt=_when(data.get("next_payment_attempt")),
        period_start=_when(data.get("period_start")),
        period_end=_when(data.get("period_end")),
        lines=tuple(_line(line) for line in listed or [] if isinstance(line, Mapping)),
        payment_intent_reference=_id(data.get("payment_intent")),
        failure_code=failure,
        hosted_invoice_url=str(data.get("hosted_invoice_url") or ""),
        created_at=_when(data.get("created")),
    )
