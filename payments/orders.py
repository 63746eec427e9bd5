"""The order.placed consumer: validate an order message like an API request, then create its payment once.

The order service publishes `order.placed` (docs/order-placed.md). Each message becomes one payment of
the storefront client it names, through `payment_create` with the idempotency key `order:<order_id>`,
so a redelivered or republished message resumes that payment instead of making a second one. A
message that cannot be used is kept as a `DeadLetter` (card numbers masked) and acknowledged: it is
never retried forever and never stops the worker.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import serializers

from accounts.models import ApiRole, User
from config.api.errors import ApplicationError
from config.api.fields import IdentifierField
from config.security import CARD_MASK, contains_card_number, mask_sensitive
from payments import services
from payments.api import PaymentCreateSerializer
from payments.errors import CardDeclined, GatewayTimeoutError, GatewayUnavailableError, PaymentUnexpectedState
from payments.models import ChangeSource, DeadLetter, Payment
from payments.states import CONFIRMABLE

logger = logging.getLogger(__name__)

SOURCE = "order.placed"
ACCEPTED_CONTENT_TYPES = frozenset({"", "application/json"})
# Delays before handling a message again when the gateway did not answer before the intent existed.
RETRY_DELAYS_SECONDS = (1, 5, 30, 120)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
DEAD_LETTER_BODY_LIMIT = 100_000
# The payment fields a redelivery must repeat; a different value means a second, conflicting order message.
_CONFLICT_FIELDS = ("amount", "currency", "customer_id", "capture_method")


class Outcome(StrEnum):
    PROCESSED = "processed"  # the payment exists (new or resumed) and its gateway calls are done
    DECLINED = "declined"  # the card was declined: the payment is `failed`
    PENDING = "pending"  # the gateway did not answer; the settle worker finishes the recorded operation
    RETRY = "retry"  # the gateway did not answer before the intent existed: handle the message again later
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class ConsumeResult:
    outcome: Outcome
    payment: Payment | None = None
    dead_letter: DeadLetter | None = None


class MessageRejected(Exception):
    """The message cannot become a payment; `reason` says why (no card number in it)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class OrderPlacedSerializer(PaymentCreateSerializer):
    """An order.placed body: the fields of `POST /api/v1/payments/`, validated the same way, plus `client`."""

    client = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.filter(api_role=ApiRole.STOREFRONT, is_active=True),
        error_messages={"does_not_exist": "{value} is not an active storefront API client."},
    )
    # Required here; at most 200 characters so that `order:<order_id>` fits the idempotency key.
    order_id = IdentifierField(max_length=200)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # A payment method means "confirm"; the order service has no shopper IP to relay.
        del fields["confirm"], fields["customer_ip"]
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["confirm"] = bool(attrs["payment_method"])
        return super().validate(attrs)


def order_placed_parse(text: str, *, content_type: str = "application/json") -> dict[str, Any]:
    """Decode and validate an order.placed body; return the `payment_create` arguments and `client`.

    :raises MessageRejected: not JSON, not an object, a missing or invalid field, an unknown client, card data.
    """
    if content_type.split(";")[0].strip().lower() not in ACCEPTED_CONTENT_TYPES:
        raise MessageRejected(f"content type {content_type!r} is not accepted; publish application/json")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MessageRejected(f"body is not JSON: {exc}") from exc
    serializer = OrderPlacedSerializer(data=data)
    if not serializer.is_valid():
        raise MessageRejected(_error_text(serializer.errors))
    return dict(serializer.validated_data)


def order_placed_consume(
    *,
    body: bytes | str,
    headers: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    attempt: int = 1,
) -> ConsumeResult:
    """Create (or resume) the payment an order.placed message asks for, once per client and order id.

    Never raises for a bad message or an unexpected error: the message is dead-lettered. `attempt`
    counts deliveries of this message to this consumer; the last one dead-letters instead of asking
    for a retry.

    :raises OperationalError, InterfaceError: the database is unreachable; the message is intact, handle it later.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    headers = dict(headers or {})
    try:
        return _consume(text, headers, content_type=content_type, attempt=attempt)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # the worker must survive anything a message can provoke
        logger.exception("Unexpected error while consuming an order.placed message")
        return _dead_letter(text, headers, f"unexpected error: {type(exc).__name__}: {exc}")


def _consume(text: str, headers: dict[str, Any], *, content_type: str, attempt: int) -> ConsumeResult:
    try:
        order = order_placed_parse(text, content_type=content_type)
    except MessageRejected as exc:
        return _dead_letter(text, headers, exc.reason)
    client: User = order.pop("client")
    key = f"order:{order['order_id']}"
    existing = _order_payment(client, key)
    if existing is not None:
        conflicts = [name for name in _CONFLICT_FIELDS if getattr(existing, name) != order[name]]
        if conflicts:
            fields = ", ".join(conflicts)
            reason = f"order {order['order_id']} already has payment {existing.public_id} with a different {fields}"
            return _dead_letter(text, headers, reason)
    try:
        payment = services.payment_create(client=client, idempotency_key=key, source=ChangeSource.WORKER, **order)
    except CardDeclined:
        return _result(Outcome.DECLINED, client, key)
    except (GatewayTimeoutError, GatewayUnavailableError) as exc:
        unfinished = _order_payment(client, key)
        if unfinished is not None and order["confirm"] and unfinished.status in CONFIRMABLE:
            # A payment recorded with a plain create before create + confirm became one call (`create_confirm`,
            # which the settle worker finishes whole): the worker only creates it, so nothing else would confirm it.
            if attempt < MAX_ATTEMPTS:
                return ConsumeResult(Outcome.RETRY, payment=unfinished)
            reason = f"{exc.code} after {attempt} attempts: payment {unfinished.public_id} was not confirmed"
            return _dead_letter(text, headers, reason)
        return _result(Outcome.PENDING, client, key)
    except PaymentUnexpectedState:
        # Another delivery of this order is working on the payment right now.
        logger.info("order.placed: payment already in progress", extra={"order_id": order["order_id"]})
        return _result(Outcome.PROCESSED, client, key)
    except ApplicationError as exc:
        return _dead_letter(text, headers, f"{exc.code}: {exc.message}")
    logger.info(
        "order.placed consumed",
        extra={"order_id": order["order_id"], "payment": payment.public_id, "status": payment.status},
    )
    return ConsumeResult(Outcome.PROCESSED, payment=payment)


def _order_payment(client: User, key: str) -> Payment | None:
    return Payment.objects.filter(client=client, idempotency_key=key).first()


def _result(outcome: Outcome, client: User, key: str) -> ConsumeResult:
    payment = _order_payment(client, key)
    logger.info(
        "order.placed consumed",
        extra={"outcome": str(outcome), "payment": payment.public_id if payment else None},
    )
    return ConsumeResult(outcome, payment=payment)


def _dead_letter(text: str, headers: dict[str, Any], reason: str) -> ConsumeResult:
    """Keep the message for inspection, with every card number masked (body, headers and error)."""
    try:
        stored = json.dumps(_masked(json.loads(text)), ensure_ascii=False)
    except ValueError:
        stored = mask_sensitive(text)  # not JSON: mask the raw text
    if len(stored) > DEAD_LETTER_BODY_LIMIT:
        stored = stored[:DEAD_LETTER_BODY_LIMIT] + "…[truncated]"
    stored = _storable(stored)
    error = _storable(mask_sensitive(reason))
    dead_letter = DeadLetter.objects.create(source=SOURCE, body=stored, headers=_masked(headers), error=error)
    logger.warning("order.placed message dead-lettered", extra={"dead_letter": dead_letter.pk, "error": error})
    return ConsumeResult(Outcome.DEAD_LETTERED, dead_letter=dead_letter)


def _masked(value: Any) -> Any:
    """A JSON-safe copy of a decoded message with card numbers masked, including ones sent as numbers."""
    if isinstance(value, str):
        return _storable(mask_sensitive(value))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return CARD_MASK if contains_card_number(str(value)) else value
    if isinstance(value, Mapping):
        return {_masked(str(key)): _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return _masked(str(value))


def _storable(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL: a message carrying one must still be dead-lettered."""
    return text.replace("\x00", "\ufffd")


def _error_text(errors: Mapping[str, Any]) -> str:
    """`param: message (code)` for each validation error, like the API's error envelope."""
    parts = []
    for param, details in errors.items():
        for detail in details if isinstance(details, list) else [details]:
            parts.append(f"{param}: {detail} ({getattr(detail, 'code', 'invalid')})")
    return "; ".join(parts)
