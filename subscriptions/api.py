"""Prices, subscriptions and invoices API: thin views that parse, call one service or selector, and render.

Storefront clients create and act on their own subscriptions (another client's is 404, never 403); finance
clients read every subscription and invoice. Prices are the catalog: every API client reads them.
"""

import re
from typing import Any

import django_filters
from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import schema as openapi
from config.api.fields import IdentifierField, StrictBooleanField, StrictIntegerField
from config.api.pagination import CursorPagination, known_params
from config.api.permissions import IsApiClient, IsStorefrontClient, request_client
from config.api.serializers import StrictSerializer
from customers.api import checked_customer_id
from gateways.billing import INTERVALS
from gateways.simulator.billing import CATALOG as SIMULATOR_CATALOG
from gateways.simulator.gateway import KNOWN_TOKENS
from payments.api import METADATA_SCHEMA, IdentifierFilter, body_of, list_filters, validate_metadata
from payments.idempotency import run_idempotent
from subscriptions import selectors, services
from subscriptions.models import Invoice, Price, Subscription
from subscriptions.rendering import render_invoice, render_price, render_subscription
from subscriptions.states import InvoiceStatus, SubscriptionStatus

_TOKEN = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
_SAVED = re.compile(r"^pmt_[A-Za-z0-9]{1,40}$")
MAX_QUANTITY = 10_000
MAX_TRIAL_DAYS = 730


def _invalid(message: str) -> serializers.ValidationError:
    return serializers.ValidationError(serializers.ErrorDetail(message, code="parameter_invalid"))


def _checked_method(value: str) -> str:
    if not (_TOKEN.fullmatch(value) or _SAVED.fullmatch(value)):
        raise _invalid("payment_method must be a gateway token such as pm_card_visa or a saved method (pmt_...)")
    return value


def _checked_quantity(value: int) -> int:
    if not 1 <= value <= MAX_QUANTITY:
        raise _invalid(f"quantity must be 1 to {MAX_QUANTITY}")
    return value


class SubscriptionCreateSerializer(StrictSerializer):
    customer_id = IdentifierField(max_length=255)
    price = IdentifierField(max_length=255)
    quantity = StrictIntegerField(required=False, default=1)
    payment_method = IdentifierField(max_length=255, required=False, default="")
    trial_days = StrictIntegerField(required=False, default=None, allow_null=True)
    metadata = serializers.JSONField(required=False, default=dict, validators=[validate_metadata])

    def validate_customer_id(self, value: str) -> str:
        return checked_customer_id(value) and value

    def validate_quantity(self, value: int) -> int:
        return _checked_quantity(value)

    def validate_payment_method(self, value: str) -> str:
        return _checked_method(value) if value else value

    def validate_trial_days(self, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_TRIAL_DAYS:
            raise _invalid(f"trial_days must be 0 to {MAX_TRIAL_DAYS}")
        return value or None


class SubscriptionUpdateSerializer(StrictSerializer):
    price = IdentifierField(max_length=255, required=False)
    quantity = StrictIntegerField(required=False)
    payment_method = IdentifierField(max_length=255, required=False)
    metadata = serializers.JSONField(required=False, validators=[validate_metadata])

    def validate_quantity(self, value: int) -> int:
        return _checked_quantity(value)

    def validate_payment_method(self, value: str) -> str:
        return _checked_method(value)


class SubscriptionCancelSerializer(StrictSerializer):
    at_period_end = StrictBooleanField(required=False, default=False)


class SubscriptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SubscriptionStatus.choices)
    customer_id = IdentifierFilter()

    class Meta:
        model = Subscription
        fields = ["status"]


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    customer_id = IdentifierFilter()
    subscription = IdentifierFilter()

    class Meta:
        model = Invoice
        fields = ["status"]


# --- OpenAPI ---------------------------------------------------------------------------------------------
STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}
INTEGER = {"type": "integer"}


def _required(schema: dict[str, Any]) -> dict[str, Any]:
    schema["required"] = list(schema["properties"])
    return schema


PRICE = openapi.component(
    "Price",
    _required(
        {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^price_"},
                "object": {"type": "string", "enum": ["price"]},
                "product": _required({"type": "object", "properties": {"id": STRING, "name": STRING}}),
                "unit_amount": INTEGER,
                "currency": STRING,
                "recurring": _required(
                    {
                        "type": "object",
                        "properties": {
                            "interval": {"type": "string", "enum": list(INTERVALS)},
                            "interval_count": INTEGER,
                        },
                    }
                ),
                "trial_period_days": {"type": "integer", "nullable": True},
                "active": {"type": "boolean"},
            },
        }
    ),
)
SUBSCRIPTION = openapi.component(
    "Subscription",
    _required(
        {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^sub_"},
                "object": {"type": "string", "enum": ["subscription"]},
                "customer_id": STRING,
                "price": STRING,
                "quantity": INTEGER,
                "status": {"type": "string", "enum": list(SubscriptionStatus.values)},
                "trial_start": NULLABLE_TIMESTAMP,
                "trial_end": NULLABLE_TIMESTAMP,
                "current_period_start": TIMESTAMP,
                "current_period_end": TIMESTAMP,
                "cancel_at_period_end": {"type": "boolean"},
                "canceled_at": NULLABLE_TIMESTAMP,
                "default_payment_method": {"type": "string", "pattern": "^pmt_", "nullable": True},
                "latest_invoice": {"type": "string", "pattern": "^in_", "nullable": True},
                "gateway_reference": STRING,
                "metadata": {"type": "object", "additionalProperties": STRING},
                "created": TIMESTAMP,
                "updated": TIMESTAMP,
            },
        }
    ),
)
INVOICE = openapi.component(
    "Invoice",
    _required(
        {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^in_"},
                "object": {"type": "string", "enum": ["invoice"]},
                "customer_id": STRING,
                "subscription": {"type": "string", "pattern": "^sub_", "nullable": True},
                "status": {"type": "string", "enum": list(InvoiceStatus.values)},
                "currency": STRING,
                "amount_due": INTEGER,
                "amount_paid": INTEGER,
                "amount_remaining": INTEGER,
                "attempt_count": INTEGER,
                "next_payment_attempt": NULLABLE_TIMESTAMP,
                "period_start": NULLABLE_TIMESTAMP,
                "period_end": NULLABLE_TIMESTAMP,
                "lines": {
                    "type": "array",
                    "items": _required(
                        {
                            "type": "object",
                            "properties": {
                                "description": STRING,
                                "amount": INTEGER,
                                "quantity": INTEGER,
                                "price": NULLABLE_STRING,
                                "period": _required(
                                    {"type": "object", "properties": {"start": TIMESTAMP, "end": TIMESTAMP}}
                                ),
                            },
                        }
                    ),
                },
                "payment": {"type": "string", "pattern": "^pay_", "nullable": True},
                "hosted_invoice_url": NULLABLE_STRING,
                "gateway_reference": STRING,
                "created": TIMESTAMP,
                "updated": TIMESTAMP,
            },
        }
    ),
)


def _method_schema() -> dict[str, Any]:
    saved: dict[str, Any] = {"type": "string", "pattern": _SAVED.pattern, "description": "a saved method"}
    token: dict[str, Any]
    if settings.PAYMENTS_GATEWAY == "simulator":
        token = {"type": "string", "enum": sorted(KNOWN_TOKENS), "description": "a simulator test token"}
    else:
        token = {"type": "string", "pattern": _TOKEN.pattern, "maxLength": 255, "description": "a gateway token"}
    return {"anyOf": [token, saved]}


def _price_schema() -> dict[str, Any]:
    """An active price of the catalog: with the simulator, exactly its shipped catalog."""
    if settings.PAYMENTS_GATEWAY == "simulator":
        return {"type": "string", "enum": sorted(SIMULATOR_CATALOG), "description": "a price of the catalog"}
    return {
        **openapi.text(max_length=255),
        "description": "an active price of the catalog (others are 400 parameter_invalid)",
    }


PRICE_ID = _price_schema()
QUANTITY = {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY}
CREATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["customer_id", "price"],
    "properties": {
        "customer_id": openapi.text(max_length=255),
        "price": PRICE_ID,
        "quantity": QUANTITY,
        "payment_method": _method_schema(),
        "trial_days": {"type": "integer", "minimum": 0, "maximum": MAX_TRIAL_DAYS, "nullable": True},
        "metadata": METADATA_SCHEMA,
    },
}
UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "price": PRICE_ID,
        "quantity": QUANTITY,
        "payment_method": _method_schema(),
        "metadata": METADATA_SCHEMA,
    },
}
CANCEL_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {"at_period_end": {"type": "boolean"}}}
SUBSCRIPTION_ID = openapi.path_id("id", "sub_…")
OPTIONAL_KEY = [openapi.idempotency_key(required=False), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER]
openapi.link("subscriptions_create", 201, "retrieve", "subscriptions_retrieve", id="$response.body#/id")
openapi.link("subscriptions_create", 201, "cancel", "subscriptions_cancel_create", id="$response.body#/id")


@extend_schema_view(
    list=extend_schema(
        operation_id="prices_list",
        summary="The catalog's prices, active first (one page)",
        parameters=[openapi.RETRY_AFTER],
        responses=openapi.responses({200: openapi.page_of(PRICE, "Every price, active first.")}),
    ),
    retrieve=extend_schema(
        operation_id="prices_retrieve",
        parameters=[openapi.path_id("id", "price_…"), openapi.RETRY_AFTER],
        responses=openapi.responses({200: PRICE}, 404),
    ),
)
class PriceViewSet(viewsets.GenericViewSet):
    permission_classes = (IsApiClient,)
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"
    queryset = Price.objects.none()
    pagination_class = None
    filter_backends = ()

    def list(self, request: Request) -> Response:
        known_params(request, ())
        return Response({"next": None, "previous": None, "results": [render_price(p) for p in selectors.price_list()]})

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        return Response(render_price(selectors.price_get(reference=id)))


@extend_schema_view(
    create=extend_schema(
        operation_id="subscriptions_create",
        summary="Subscribe a customer to a price (the first invoice charged at once unless there is a trial)",
        request={"application/json": CREATE_SCHEMA},
        parameters=[openapi.idempotency_key(required=True), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER],
        responses=openapi.responses({201: SUBSCRIPTION}, 402, 409, 415, 422, 502),
    ),
    retrieve=extend_schema(
        operation_id="subscriptions_retrieve",
        parameters=[SUBSCRIPTION_ID, openapi.RETRY_AFTER],
        responses=openapi.responses({200: SUBSCRIPTION}, 404),
    ),
    list=extend_schema(
        operation_id="subscriptions_list",
        parameters=[
            openapi.query("status", {"type": "string", "enum": list(SubscriptionStatus.values)}),
            openapi.query("customer_id", openapi.text()),
            openapi.CURSOR,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: openapi.page_of(SUBSCRIPTION, "Subscriptions, newest first.")}, 404),
    ),
    partial_update=extend_schema(
        operation_id="subscriptions_partial_update",
        summary="Change the price, quantity, payment method or metadata (with the gateway's proration)",
        request={"application/json": UPDATE_SCHEMA},
        parameters=[SUBSCRIPTION_ID, *OPTIONAL_KEY],
        responses=openapi.responses({200: SUBSCRIPTION}, 402, 404, 409, 415, 422, 502),
    ),
    cancel=extend_schema(
        operation_id="subscriptions_cancel_create",
        summary="Cancel now, or at the end of the period",
        request={"application/json": CANCEL_SCHEMA},
        parameters=[SUBSCRIPTION_ID, *OPTIONAL_KEY],
        responses=openapi.responses({200: SUBSCRIPTION}, 404, 409, 415, 422, 502),
    ),
    destroy=extend_schema(
        operation_id="subscriptions_destroy",
        summary="Cancel now",
        parameters=[SUBSCRIPTION_ID, *OPTIONAL_KEY],
        responses=openapi.responses({200: SUBSCRIPTION}, 404, 409, 422, 502),
    ),
)
class SubscriptionViewSet(viewsets.GenericViewSet):
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"
    queryset = Subscription.objects.none()
    serializer_class = SubscriptionCreateSerializer  # for the schema
    pagination_class = CursorPagination
    filter_backends = ()

    def get_permissions(self) -> list:
        if self.action in {"list", "retrieve"}:
            return [IsApiClient()]
        return [IsStorefrontClient()]

    def _subscription(self, request: Request, id: str) -> Subscription:  # noqa: A002
        return selectors.subscription_get(client=request_client(request), public_id=id)

    def create(self, request: Request) -> Response:
        known_params(request, ())
        data = body_of(request, SubscriptionCreateSerializer)
        client = request_client(request)

        def handler(reference: str) -> Response:
            created = services.subscription_create(client=client, request_reference=reference, **data)
            shown = selectors.subscription_get(client=client, public_id=created.public_id)
            return Response(render_subscription(shown), status=201)

        return run_idempotent(request, required=True, handler=handler)

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        return Response(render_subscription(self._subscription(request, id)))

    def list(self, request: Request) -> Response:
        rows = selectors.subscription_list(
            client=request_client(request), filters=list_filters(request, SubscriptionFilter)
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([render_subscription(row) for row in page or []])

    def _act(self, request: Request, serializer_class: type[StrictSerializer], id: str, work: Any) -> Response:  # noqa: A002
        known_params(request, ())
        subscription = self._subscription(request, id)
        data = body_of(request, serializer_class) if serializer_class is not None else {}
        client = request_client(request)

        def handler(reference: str) -> Response:
            done = work(subscription, data, reference)
            return Response(render_subscription(selectors.subscription_get(client=client, public_id=done.public_id)))

        return run_idempotent(request, required=False, handler=handler)

    def partial_update(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(
            request,
            SubscriptionUpdateSerializer,
            id,
            lambda sub, data, ref: services.subscription_update(subscription=sub, changes=data, request_reference=ref),
        )

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(
            request,
            SubscriptionCancelSerializer,
            id,
            lambda sub, data, _ref: services.subscription_cancel(subscription=sub, **data),
        )

    def destroy(self, request: Request, id: str) -> Response:  # noqa: A002
        return self._act(
            request,
            SubscriptionCancelSerializer,
            id,
            lambda sub, _data, _ref: services.subscription_cancel(subscription=sub, at_period_end=False),
        )


@extend_schema_view(
    retrieve=extend_schema(
        operation_id="invoices_retrieve",
        parameters=[openapi.path_id("id", "in_…"), openapi.RETRY_AFTER],
        responses=openapi.responses({200: INVOICE}, 404),
    ),
    list=extend_schema(
        operation_id="invoices_list",
        parameters=[
            openapi.query("status", {"type": "string", "enum": list(InvoiceStatus.values)}),
            openapi.query("customer_id", openapi.text()),
            openapi.query("subscription", openapi.text()),
            openapi.CURSOR,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: openapi.page_of(INVOICE, "Invoices, newest first.")}, 404),
    ),
)
class InvoiceViewSet(viewsets.GenericViewSet):
    permission_classes = (IsApiClient,)
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"
    queryset = Invoice.objects.none()
    pagination_class = CursorPagination
    filter_backends = ()

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        return Response(render_invoice(selectors.invoice_get(client=request_client(request), public_id=id)))

    def list(self, request: Request) -> Response:
        rows = selectors.invoice_list(client=request_client(request), filters=list_filters(request, InvoiceFilter))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([render_invoice(row) for row in page or []])
