"""Payments API: thin views that parse, call one service or selector, and render."""

import re
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms as django_forms
from django.conf import settings
from django_filters.utils import translate_validation
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import schema as openapi
from config.api.fields import (
    IdentifierField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    unsafe_identifier,
)
from config.api.pagination import PAGE_PARAMS, known_params
from config.api.permissions import IsApiClient, IsStorefrontClient, request_client
from config.api.serializers import StrictSerializer
from events.api import AFTER, EVENT_PAGE, event_page_response
from gateways.simulator.gateway import KNOWN_TOKENS
from payments import reads, selectors, services
from payments.idempotency import run_idempotent, run_idempotent_service
from payments.models import CaptureMethod, Payment, ReviewState, SetupFutureUsage
from payments.money import CURRENCIES, MAX_AMOUNT, format_amount, get_currency, is_supported
from payments.rendering import render_payment, render_payment_row
from payments.states import PaymentStatus

_PAYMENT_METHOD = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
_SAVED_METHOD = re.compile(r"^pmt_[A-Za-z0-9]{1,40}$")  # a customer's saved method (customers app)
EXAMPLES = ((1999, "usd"), (500, "jpy"), (1500, "kwd"))
CANCELLATION_REASONS = ("requested_by_customer", "duplicate", "fraudulent", "abandoned")


def _error(message: str, code: str) -> serializers.ValidationError:
    return serializers.ValidationError(serializers.ErrorDetail(message, code=code))


def _field_error(param: str, message: str, code: str) -> serializers.ValidationError:
    return serializers.ValidationError({param: [serializers.ErrorDetail(message, code=code)]})


def validate_amount(amount: int, currency_code: str, *, param: str = "amount") -> None:
    """Amount rules of API.md, per currency. Raises a field error keyed by `param`."""
    currency = get_currency(currency_code)
    if amount < 1:
        raise _field_error(param, f"{param} must be a positive integer", "parameter_invalid")
    if amount > MAX_AMOUNT:
        raise _field_error(param, f"{param} must be at most {MAX_AMOUNT:,}", "amount_too_large")
    if currency.minimum and amount < currency.minimum:
        minimum = format_amount(currency.minimum, currency.code)
        raise _field_error(param, f"{param} must be at least {currency.minimum} ({minimum})", "amount_too_small")
    if amount % currency.step:
        raise _field_error(
            param, f"{param} in {currency.code} must be a multiple of {currency.step}", "parameter_invalid"
        )


def validate_metadata(value: Any) -> None:
    if not isinstance(value, dict):
        raise _error("metadata must be an object of strings", "parameter_invalid")
    if len(value) > 50:
        raise _error("metadata may have at most 50 keys", "parameter_invalid")
    for key, item in value.items():
        if not key or len(key) > 40 or "[" in key or "]" in key:
            raise _error("metadata keys must be 1-40 characters without [ or ]", "parameter_invalid")
        if not isinstance(item, str) or len(item) > 500:
            raise _error(f"metadata[{key}] must be a string of at most 500 characters", "parameter_invalid")


AMOUNT_HELP = (
    "A JSON integer in the currency's minor unit: "
    + ", ".join(f"{amount} {code} is {format_amount(amount, code)}" for amount, code in EXAMPLES)
    + ". At least the currency's minimum, at most 99,999,999; multiples of 10 in three-decimal currencies."
)


class PaymentCreateSerializer(StrictSerializer):
    amount = StrictIntegerField(help_text=AMOUNT_HELP)
    currency = IdentifierField(max_length=3, min_length=3)
    customer_id = IdentifierField(max_length=255)
    order_id = IdentifierField(max_length=255, required=False, default="")
    description = StrictCharField(max_length=1000, required=False, default="", allow_blank=True)
    metadata = serializers.JSONField(required=False, default=dict, validators=[validate_metadata])
    capture_method = serializers.ChoiceField(choices=CaptureMethod.values, required=False, default="automatic")
    payment_method = IdentifierField(max_length=255, required=False, default="")
    confirm = StrictBooleanField(required=False, default=False)
    customer_email = serializers.EmailField(required=False, default="")
    customer_ip = serializers.IPAddressField(required=False, default=None)
    off_session = StrictBooleanField(required=False, default=False)
    setup_future_usage = serializers.ChoiceField(choices=SetupFutureUsage.values, required=False, default="")

    def validate_currency(self, value: str) -> str:
        code = value.lower()
        if not is_supported(code):
            raise _error(f"currency {value!r} is not supported", "currency_not_supported")
        return code

    def validate_payment_method(self, value: str) -> str:
        # fullmatch: `$` alone would let a trailing newline through
        if value and not (_PAYMENT_METHOD.fullmatch(value) or _SAVED_METHOD.fullmatch(value)):
            raise _error(
                "payment_method must be a gateway token such as pm_card_visa or a saved method (pmt_...)",
                "parameter_invalid",
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        validate_amount(attrs["amount"], attrs["currency"])
        if attrs["confirm"] and not attrs["payment_method"]:
            raise _field_error("payment_method", "payment_method is required with confirm: true", "parameter_missing")
        if attrs["off_session"] and not (attrs["confirm"] and attrs["payment_method"].startswith("pmt_")):
            message = "off_session: true needs confirm: true and a saved payment method (pmt_...)"
            raise _field_error("off_session", message, "parameter_invalid")
        if attrs["setup_future_usage"] and attrs["payment_method"].startswith("pmt_"):
            message = "setup_future_usage saves a new card; this payment method is already saved"
            raise _field_error("setup_future_usage", message, "parameter_invalid")
        return attrs


class PaymentConfirmSerializer(StrictSerializer):
    payment_method = IdentifierField(max_length=255, required=False, default="")

    def validate_payment_method(self, value: str) -> str:
        if value and not _PAYMENT_METHOD.fullmatch(value):
            raise _error("payment_method must be a gateway token such as pm_card_visa", "parameter_invalid")
        return value


class PaymentCaptureSerializer(StrictSerializer):
    amount = StrictIntegerField(required=False, default=None)

    def validate_amount(self, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise _error("amount must be a positive integer", "parameter_invalid")
        return value


class PaymentCancelSerializer(StrictSerializer):
    reason = serializers.ChoiceField(choices=CANCELLATION_REASONS, required=False, default="")


class IdentifierFilter(django_filters.CharFilter):
    """An exact id filter that refuses what no stored id can be (control characters, surrounding whitespace)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strip", False)
        kwargs.setdefault("validators", [_identifier_text])
        super().__init__(**kwargs)


def _identifier_text(value: str) -> None:
    if unsafe_identifier(value):
        raise django_forms.ValidationError(
            "must not contain control characters or surrounding whitespace.", code="parameter_invalid"
        )


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PaymentStatus.choices)
    customer_id = IdentifierFilter()
    order_id = IdentifierFilter()
    created_gte = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_lt = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Payment
        fields = ["status", "customer_id", "order_id"]


def list_filters(request: Request, filterset_class: type[django_filters.FilterSet]) -> dict[str, Any]:
    """The cleaned values of a list's filters (empty when none is given).

    :raises serializers.ValidationError: a filter's value is invalid (as DjangoFilterBackend raises it).
    """
    fields = filterset_class.base_filters
    known_params(request, [*fields, *PAGE_PARAMS])
    if not any(name in request.query_params for name in fields):
        return {}
    filterset = filterset_class(request.query_params, queryset=filterset_class._meta.model._default_manager.none())
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    cleaned = dict(filterset.form.cleaned_data)
    for name, value in cleaned.items():
        if isinstance(value, datetime):
            cleaned[name] = _in_utc(name, value)
    return cleaned


def _in_utc(name: str, value: datetime) -> datetime:
    """A filter's time in UTC: PostgreSQL refuses offsets beyond +-15:59, which ISO 8601 allows."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        detail = serializers.ErrorDetail(f"{name}: the time is out of range.", code="parameter_invalid")
        raise serializers.ValidationError({name: [detail]}) from exc


def body_of(request: Request, serializer_class: type[StrictSerializer]) -> dict[str, Any]:
    """Validate the body (an empty body counts as `{}`)."""
    data = request.data if request.body else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- OpenAPI (served at /api/schema/; `make fuzz` holds the service to it) -------------------------------
def _any_case(code: str) -> str:
    return "".join(f"[{char}{char.upper()}]" for char in code)


def _payment_method_schema() -> dict[str, Any]:
    """A gateway token: with the simulator, exactly the test tokens it knows (any other is 400 at confirm)."""
    if settings.PAYMENTS_GATEWAY == "simulator":
        return {"type": "string", "enum": sorted(KNOWN_TOKENS), "description": "a simulator test token"}
    return {"type": "string", "pattern": _PAYMENT_METHOD.pattern, "maxLength": 255, "description": "a gateway token"}


METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 50,
    "description": "At most 50 keys of 1-40 characters without [ or ], each to a string of at most 500 characters.",
    "propertyNames": {"minLength": 1, "maxLength": 40, "pattern": "^[^\\[\\]\\u0000]*$"},
    "additionalProperties": {"type": "string", "maxLength": 500, "pattern": openapi.NO_NUL},
}


def _amount_groups() -> list[tuple[list[str], int, int]]:
    """Supported currencies grouped by (their smallest amount, their step): one create body per group."""
    groups: dict[tuple[int, int], list[str]] = {}
    for currency in CURRENCIES.values():
        if currency.supported:
            step = currency.step
            groups.setdefault((max(currency.minimum or 1, step), step), []).append(currency.code)
    return [(codes, minimum, step) for (minimum, step), codes in sorted(groups.items())]


def payment_create_schema() -> dict[str, Any]:
    """The create body: one variant per currency group (its amount bounds), each with or without `confirm: true`
    (which needs a `payment_method`). Exactly one variant matches a valid body."""
    fields: dict[str, Any] = dict(PaymentCreateSerializer().fields)
    common: dict[str, Any] = {
        "customer_id": openapi.text(max_length=fields["customer_id"].max_length),
        "order_id": openapi.text(max_length=fields["order_id"].max_length),
        "description": openapi.text(max_length=fields["description"].max_length, blank=True),
        "metadata": METADATA_SCHEMA,
        "capture_method": {"type": "string", "enum": list(CaptureMethod.values), "default": "automatic"},
        "payment_method": _payment_method_schema(),
        "customer_email": {"type": "string", "format": "email", "maxLength": 254},
        "customer_ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        "setup_future_usage": {
            "type": "string",
            "enum": list(SetupFutureUsage.values),
            "description": "save the card (a gateway token, not a pmt_...) to the customer once the payment succeeds",
        },
    }
    variants = []
    for codes, minimum, step in _amount_groups():
        amount: dict[str, Any] = {
            "type": "integer",
            "minimum": minimum,
            "maximum": MAX_AMOUNT,
            "description": AMOUNT_HELP,
        }
        if step > 1:
            amount["multipleOf"] = step
        currency = {
            "type": "string",
            "pattern": "^(" + "|".join(_any_case(code) for code in codes) + ")$",
            "description": "any case: " + ", ".join(codes),
        }
        base = f"{', '.join(codes)}: amount {minimum}..{MAX_AMOUNT}" + (f" in steps of {step}" if step > 1 else "")
        token, saved = _payment_method_schema(), {"type": "string", "pattern": _SAVED_METHOD.pattern}
        for title, confirm, method, off_session in (
            (base, False, token, False),
            (base + " with a saved method (pmt_...)", False, saved, False),
            (base + ", confirm: true", True, token, False),
            (base + ", confirm: true with a saved method (pmt_...), on or off session", True, saved, True),
        ):
            required = ["amount", "currency", "customer_id"] + (["confirm"] if confirm else [])
            if confirm or method is saved:  # exactly one variant matches: a pmt_ one names its method
                required.append("payment_method")
            properties: dict[str, Any] = {
                "amount": amount,
                "currency": currency,
                **common,
                "payment_method": method,
                "confirm": {"type": "boolean", "enum": [confirm]},
                "off_session": {"type": "boolean"} if off_session else {"type": "boolean", "enum": [False]},
            }
            if method is saved:
                del properties["setup_future_usage"]  # a saved method is saved already
            variants.append(
                {
                    "type": "object",
                    "title": title,
                    "required": required,
                    "additionalProperties": False,
                    "properties": properties,
                }
            )
    return {"oneOf": variants, "description": "Unknown fields are 400 parameter_invalid."}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
TIMESTAMP = {"type": "string", "format": "date-time"}
PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^pay_"},
        "object": {"type": "string", "enum": ["payment"]},
        "amount": INTEGER,
        "currency": STRING,
        "status": {"type": "string", "enum": list(PaymentStatus.values)},
        "capture_method": {"type": "string", "enum": list(CaptureMethod.values)},
        "amount_capturable": INTEGER,
        "amount_received": INTEGER,
        "amount_refunded": INTEGER,
        "amount_disputed": INTEGER,
        "disputed": {"type": "boolean"},
        "customer_id": STRING,
        "order_id": _nullable(STRING),
        "description": _nullable(STRING),
        "metadata": {"type": "object", "additionalProperties": STRING},
        "payment_method": _nullable(STRING),
        "client_secret": _nullable(STRING),
        "gateway": STRING,
        "gateway_reference": _nullable(STRING),
        "failure_code": _nullable(STRING),
        "failure_message": _nullable(STRING),
        "cancellation_reason": _nullable({"type": "string", "enum": list(CANCELLATION_REASONS)}),
        "customer_email": _nullable(STRING),
        "risk": _nullable(
            {"type": "object", "required": ["score", "level"], "properties": {"score": INTEGER, "level": STRING}}
        ),
        "review": _nullable(
            {
                "type": "object",
                "required": ["state", "reasons"],
                "properties": {
                    "state": {"type": "string", "enum": list(ReviewState.values)},
                    "reasons": {"type": "array"},
                },
            }
        ),
        "invoice": _nullable({"type": "string", "pattern": "^in_", "description": "the invoice this payment charges"}),
        "created": TIMESTAMP,
        "updated": TIMESTAMP,
    },
}
PAYMENT_SCHEMA["required"] = list(PAYMENT_SCHEMA["properties"])
PAYMENT = openapi.component("Payment", PAYMENT_SCHEMA)
PAYMENT_ID = openapi.path_id("id", "pay_…")
ACTION_ERRORS = (404, 409, 415, 422, 502)
# The parameters of confirm, capture and cancel: the payment, an optional key and what 429/503 answers carry.
ACTION_PARAMETERS = [
    PAYMENT_ID,
    openapi.idempotency_key(required=False),
    openapi.IDEMPOTENT_REPLAYED,
    openapi.RETRY_AFTER,
]

openapi.link("payments_create", 201, "confirm", "payments_confirm_create", id="$response.body#/id")
openapi.link("payments_create", 201, "capture", "payments_capture_create", id="$response.body#/id")
openapi.link("payments_create", 201, "cancel", "payments_cancel_create", id="$response.body#/id")
openapi.link("payments_create", 201, "retrieve", "payments_retrieve", id="$response.body#/id")
openapi.link("payments_create", 201, "events", "payments_events_list", id="$response.body#/id")
openapi.link("payments_create", 201, "refund", "payments_refunds_create", payment_id="$response.body#/id")
openapi.link("payments_confirm_create", 200, "capture", "payments_capture_create", id="$response.body#/id")
openapi.link("payments_confirm_create", 200, "cancel", "payments_cancel_create", id="$response.body#/id")
openapi.link("payments_confirm_create", 200, "refund", "payments_refunds_create", payment_id="$response.body#/id")
openapi.link("payments_capture_create", 200, "refund", "payments_refunds_create", payment_id="$response.body#/id")
openapi.link("payments_capture_create", 200, "refunds", "payments_refunds_list", payment_id="$response.body#/id")


@extend_schema_view(
    create=extend_schema(
        summary="Create a payment (and confirm it with `confirm: true`)",
        request={"application/json": payment_create_schema()},
        parameters=[openapi.idempotency_key(required=True), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER],
        responses=openapi.responses({201: PAYMENT}, 402, 409, 415, 422, 502),
    ),
    retrieve=extend_schema(
        parameters=[PAYMENT_ID, openapi.RETRY_AFTER], responses=openapi.responses({200: PAYMENT}, 404)
    ),
    list=extend_schema(
        parameters=[
            openapi.query("status", {"type": "string", "enum": list(PaymentStatus.values)}),
            openapi.query("customer_id", openapi.text()),
            openapi.query("order_id", openapi.text()),
            openapi.query("created_gte", openapi.ISO_DATETIME, "ISO 8601"),
            openapi.query("created_lt", openapi.ISO_DATETIME, "ISO 8601"),
            openapi.CURSOR,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: openapi.page_of(PAYMENT, "Payments, newest first.")}, 404),
    ),
    confirm=extend_schema(
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"payment_method": _payment_method_schema()},
            }
        },
        parameters=ACTION_PARAMETERS,
        responses=openapi.responses({200: PAYMENT}, 402, *ACTION_ERRORS),
    ),
    capture=extend_schema(
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "amount": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_AMOUNT,
                        "description": "At most amount_capturable (more: 400 amount_too_large); the rest is released.",
                    }
                },
            }
        },
        parameters=ACTION_PARAMETERS,
        responses=openapi.responses({200: PAYMENT}, *ACTION_ERRORS),
    ),
    cancel=extend_schema(
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"reason": {"type": "string", "enum": list(CANCELLATION_REASONS)}},
            }
        },
        parameters=ACTION_PARAMETERS,
        responses=openapi.responses({200: PAYMENT}, *ACTION_ERRORS),
    ),
    events=extend_schema(
        operation_id="payments_events_list",
        parameters=[
            PAYMENT_ID,
            AFTER,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: EVENT_PAGE}, 404),
    ),
)
class PaymentViewSet(viewsets.GenericViewSet):
    """Create and act on payments. Storefront clients see their own; finance clients read all."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"
    filterset_class = PaymentFilter
    serializer_class = PaymentCreateSerializer  # for the schema

    def get_permissions(self) -> list:
        if self.action in {"create", "confirm", "capture", "cancel"}:
            return [IsStorefrontClient()]
        return [IsApiClient()]

    def get_queryset(self) -> Any:
        return selectors.payment_queryset_for(client=request_client(self.request))

    def _payment(self) -> Payment:
        return selectors.payment_get(client=request_client(self.request), public_id=self.kwargs["id"])

    def create(self, request: Request) -> Response:
        data = body_of(request, PaymentCreateSerializer)

        return run_idempotent_service(
            request,
            required=True,
            service=lambda claim: services.payment_create(client=request_client(request), claim=claim, **data),
            render=lambda payment: (201, render_payment(payment)),
        )

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        return Response(render_payment_row(reads.payment_row(client=request_client(request), public_id=id)))

    def list(self, request: Request) -> Response:
        rows = reads.payment_rows(client=request_client(request), filters=list_filters(request, PaymentFilter))
        paginator = reads.RowCursorPagination()
        page = paginator.paginate_rows(rows, request, self)
        return paginator.get_paginated_response([render_payment_row(row) for row in page])

    def _act(self, request: Request, serializer_class: type[StrictSerializer], service: Any) -> Response:
        """Find the payment (404), validate the body (400), then run the service once per key."""
        payment = self._payment()
        data = body_of(request, serializer_class)
        return run_idempotent(
            request,
            required=False,
            handler=lambda _reference: Response(render_payment(service(payment=payment, **data))),
        )

    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(request, PaymentConfirmSerializer, services.payment_confirm)

    @action(detail=True, methods=["post"])
    def capture(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(request, PaymentCaptureSerializer, services.payment_capture)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(request, PaymentCancelSerializer, services.payment_cancel)

    @action(detail=True, methods=["get"])
    def events(self, request: Request, id: str) -> Response:  # noqa: A002
        client = request_client(request)
        reads.payment_row(client=client, public_id=id)  # 404 unless the client may see the payment
        return event_page_response(request, client=client, subject_id=id)
