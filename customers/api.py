"""Customers API: a storefront's customers by its own `customer_id`, setup intents, saved payment methods.

Storefront clients only: a customer is addressed by the storefront's own id, which is unique per storefront,
not across them, so a finance client has no customer to name here (403); finance staff see customers in the
back office. Another storefront's customer or method is 404, never 403.

Erasure and export (`DELETE /customers/{id}/`, `GET /customers/{id}/export/`) are the exception: finance only
(a storefront is 403), since finance answers for every shop's personal data. A finance client names the
customer by our `cu_…` id (what every customer object and event carries), or by the storefront's own id
with `?client=<the storefront client's username>`. Both reach the privacy app through `customers.ports`.
"""

import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiRole, User
from config.api import schema as openapi
from config.api.fields import IdentifierField, StrictBooleanField, StrictCharField, unsafe_identifier
from config.api.pagination import known_params
from config.api.permissions import IsFinanceClient, IsStorefrontClient, request_client
from config.api.serializers import StrictSerializer
from customers import selectors, services
from customers.models import Customer, PaymentMethod, PaymentMethodStatus
from customers.ports import customer_privacy
from customers.rendering import render_customer, render_payment_method, render_setup_intent
from gateways.base import SETUP_INTENT_STATUSES
from gateways.simulator.gateway import KNOWN_TOKENS
from payments.api import METADATA_SCHEMA, body_of, validate_metadata
from payments.idempotency import run_idempotent
from payments.models import ChangeSource

_TOKEN = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
_SAVED = re.compile(r"^pmt_[A-Za-z0-9]{1,36}$")
CUSTOMER_ID_MAX = 255


def _field_error(param: str, message: str, code: str = "parameter_invalid") -> serializers.ValidationError:
    return serializers.ValidationError({param: [serializers.ErrorDetail(message, code=code)]})


def checked_customer_id(value: str) -> str:
    """The path's `customer_id` as a write takes it (the rules of a payment's `customer_id`).

    :raises serializers.ValidationError: empty, longer than 255, or with control characters or surrounding spaces.
    """
    if not value or len(value) > CUSTOMER_ID_MAX or unsafe_identifier(value):
        raise _field_error(
            "customer_id", f"customer_id must be 1-{CUSTOMER_ID_MAX} characters without control characters."
        )
    return value


class CustomerPutSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    metadata = serializers.JSONField(required=False, validators=[validate_metadata])
    default_payment_method = IdentifierField(max_length=40, required=False, allow_null=True)

    def validate_email(self, value: str | None) -> str:
        return (value or "").strip()

    def validate_name(self, value: str | None) -> str:
        return value or ""

    def validate_default_payment_method(self, value: str | None) -> str | None:
        if value is not None and not _SAVED.fullmatch(value):
            raise serializers.ValidationError(
                serializers.ErrorDetail("default_payment_method must be a pmt_… id or null", code="parameter_invalid")
            )
        return value


class SetupIntentCreateSerializer(StrictSerializer):
    """No fields: the setup intent is for the customer in the path."""


class PaymentMethodAttachSerializer(StrictSerializer):
    payment_method = IdentifierField(max_length=255)
    set_default = StrictBooleanField(required=False, default=False)

    def validate_payment_method(self, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise serializers.ValidationError(
                serializers.ErrorDetail(
                    "payment_method must be a gateway token such as pm_card_visa", "parameter_invalid"
                )
            )
        return value


# --- OpenAPI -------------------------------------------------------------------------------------------
def _token_schema() -> dict[str, Any]:
    if settings.PAYMENTS_GATEWAY == "simulator":
        return {"type": "string", "enum": sorted(KNOWN_TOKENS), "description": "a simulator test token"}
    return {"type": "string", "pattern": _TOKEN.pattern, "maxLength": 255, "description": "a gateway token"}


STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
TIMESTAMP = {"type": "string", "format": "date-time"}
CUSTOMER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^cu_"},
        "object": {"type": "string", "enum": ["customer"]},
        "customer_id": STRING,
        "email": NULLABLE_STRING,
        "name": NULLABLE_STRING,
        "default_payment_method": {"type": "string", "pattern": "^pmt_", "nullable": True},
        "gateway": STRING,
        "gateway_reference": NULLABLE_STRING,
        "metadata": {"type": "object", "additionalProperties": STRING},
        "created": TIMESTAMP,
        "updated": TIMESTAMP,
    },
}
CUSTOMER_SCHEMA["required"] = list(CUSTOMER_SCHEMA["properties"])
CUSTOMER = openapi.component("Customer", CUSTOMER_SCHEMA)
PAYMENT_METHOD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^pmt_"},
        "object": {"type": "string", "enum": ["payment_method"]},
        "customer_id": STRING,
        "type": {"type": "string", "enum": ["card"]},
        "card": {
            "type": "object",
            "required": ["brand", "last4", "exp_month", "exp_year", "funding", "country", "fingerprint"],
            "properties": {
                "brand": STRING,
                "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
                "exp_month": {"type": "integer", "minimum": 1, "maximum": 12},
                "exp_year": {"type": "integer"},
                "funding": STRING,
                "country": NULLABLE_STRING,
                "fingerprint": NULLABLE_STRING,
            },
        },
        "is_default": {"type": "boolean"},
        "status": {"type": "string", "enum": list(PaymentMethodStatus.values)},
        "gateway_reference": STRING,
        "created": TIMESTAMP,
    },
}
PAYMENT_METHOD_SCHEMA["required"] = list(PAYMENT_METHOD_SCHEMA["properties"])
PAYMENT_METHOD = openapi.component("SavedPaymentMethod", PAYMENT_METHOD_SCHEMA)
SETUP_INTENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^seti_"},
        "object": {"type": "string", "enum": ["setup_intent"]},
        "client_secret": NULLABLE_STRING,
        "status": {"type": "string", "enum": list(SETUP_INTENT_STATUSES)},
        "customer_id": STRING,
    },
}
SETUP_INTENT_SCHEMA["required"] = list(SETUP_INTENT_SCHEMA["properties"])
SETUP_INTENT = openapi.component("SetupIntent", SETUP_INTENT_SCHEMA)
PAYMENT_METHOD_PAGE = openapi.page_of(PAYMENT_METHOD, "The customer's active methods: the default first, then newest.")
CUSTOMER_ID = openapi.OpenApiParameter(
    "customer_id",
    openapi.text(max_length=CUSTOMER_ID_MAX),
    location=openapi.OpenApiParameter.PATH,
    description="the storefront's own customer id (as on its payments)",
)
FINANCE_CUSTOMER_ID = openapi.OpenApiParameter(
    "customer_id",
    openapi.text(max_length=CUSTOMER_ID_MAX),
    location=openapi.OpenApiParameter.PATH,
    description="the customer's `cu_…` id; with `client`, the storefront's own customer id",
)
FINANCE_CLIENT = openapi.query(
    "client",
    openapi.text(max_length=150),
    "the storefront client (its username) whose own customer id the path names",
)
CUSTOMER_DELETED = openapi.component(
    "CustomerDeleted",
    {
        "type": "object",
        "required": ["id", "object", "deleted"],
        "properties": {
            "id": {"type": "string", "pattern": "^cu_"},
            "object": {"type": "string", "enum": ["customer"]},
            "deleted": {"type": "boolean", "enum": [True]},
        },
    },
)
CUSTOMER_EXPORT = openapi.component(
    "CustomerExport",
    {
        "type": "object",
        "description": "Everything held about the customer (the right of access); personal fields in clear.",
        "required": ["customer", "payment_methods", "payments", "refunds", "subscriptions", "invoices", "disputes"],
        "properties": {
            "object": {"type": "string", "enum": ["customer_export"]},
            "customer": {"type": "object"},
            "payment_methods": {"type": "array", "items": {"type": "object"}},
            "payments": {"type": "array", "items": {"type": "object"}},
            "refunds": {"type": "array", "items": {"type": "object"}},
            "subscriptions": {"type": "array", "items": {"type": "object"}},
            "invoices": {"type": "array", "items": {"type": "object"}},
            "disputes": {"type": "array", "items": {"type": "object"}},
            "events": {"type": "array", "items": {"type": "object"}},
            "staff_actions": {"type": "array", "items": {"type": "object"}},
            "erasures": {"type": "array", "items": {"type": "object"}},
            "exported_at": TIMESTAMP,
        },
    },
)
OPTIONAL_KEY = [openapi.idempotency_key(required=False), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER]
openapi.link("customers_update", 200, "retrieve", "customers_retrieve", customer_id="$request.path.customer_id")
openapi.link("customers_update", 201, "retrieve", "customers_retrieve", customer_id="$request.path.customer_id")
openapi.link("customers_payment_methods_create", 201, "detach", "payment_methods_destroy", id="$response.body#/id")
CUSTOMER_PUT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 254, "nullable": True},
        "name": {**openapi.text(max_length=255, blank=True), "nullable": True},
        "metadata": METADATA_SCHEMA,
        "default_payment_method": {
            "type": "string",
            "pattern": _SAVED.pattern,
            "nullable": True,
            "description": "an active saved method of this customer (another is 400 resource_missing), or null",
        },
    },
}


@extend_schema_view(
    destroy=extend_schema(
        operation_id="customers_destroy",
        summary="Erase a customer's personal data (finance only): the gateway's customer deleted, methods detached, "
        "subscriptions canceled, personal data removed from every row; amounts, statuses and ids stay",
        parameters=[FINANCE_CUSTOMER_ID, FINANCE_CLIENT, openapi.RETRY_AFTER],
        responses=openapi.responses({200: CUSTOMER_DELETED}, 404, 502),
    ),
    retrieve=extend_schema(
        operation_id="customers_retrieve",
        parameters=[CUSTOMER_ID, openapi.RETRY_AFTER],
        responses=openapi.responses({200: CUSTOMER}, 404),
    ),
    update=extend_schema(
        operation_id="customers_update",
        summary="Create (201) or update (200) a customer here and at the gateway",
        request={"application/json": CUSTOMER_PUT_SCHEMA},
        parameters=[CUSTOMER_ID, openapi.RETRY_AFTER],
        responses=openapi.responses({200: CUSTOMER, 201: CUSTOMER}, 415, 502),
    ),
)
class CustomerViewSet(viewsets.GenericViewSet):
    """A storefront's customer, by its own id; its erasure (finance), by our id."""

    permission_classes = (IsStorefrontClient,)
    serializer_class = CustomerPutSerializer  # for the schema
    queryset = Customer.objects.none()

    def get_permissions(self) -> Sequence[Any]:
        if self.action == "destroy":
            return [IsFinanceClient()]
        return super().get_permissions()

    def destroy(self, request: Request, customer_id: str) -> Response:
        known_params(request, ("client",))
        client, own_id, public_id = finance_target(request, customer_id)
        customer_privacy().erase(
            client=client,
            customer_id=own_id,
            actor=request_client(request),
            reason="Erasure requested through the API",
            source=ChangeSource.API,
        )
        return Response({"id": public_id, "object": "customer", "deleted": True})

    def retrieve(self, request: Request, customer_id: str) -> Response:
        known_params(request, ())
        return Response(_customer_response(request_client(request), customer_id))

    def update(self, request: Request, customer_id: str) -> Response:
        customer_id = checked_customer_id(customer_id)
        known_params(request, ())
        changes = body_of(request, CustomerPutSerializer)
        client = request_client(request)
        _, created = services.customer_upsert(client=client, customer_id=customer_id, changes=changes)
        return Response(_customer_response(client, customer_id), status=201 if created else 200)


def finance_target(request: Request, customer_id: str) -> tuple[User, str, str]:
    """The storefront client, its own customer id and our `cu_…` id of the customer a finance request names.

    :raises NotFound: no such customer (or no such storefront client).
    """
    name = request.query_params.get("client")
    customers = Customer.objects.filter(public_id=customer_id)
    if name is not None:
        customers = Customer.objects.filter(
            client__username=name, client__api_role=ApiRole.STOREFRONT, customer_id=customer_id
        )
    found = customers.select_related("client").first()
    if found is None:
        raise NotFound()
    return found.client, found.customer_id, found.public_id


@extend_schema_view(
    retrieve=extend_schema(
        operation_id="customers_export",
        summary="Everything held about a customer, as JSON (finance only; the right of access)",
        parameters=[FINANCE_CUSTOMER_ID, FINANCE_CLIENT, openapi.RETRY_AFTER],
        responses=openapi.responses({200: CUSTOMER_EXPORT}, 404),
    ),
)
class CustomerExportViewSet(viewsets.GenericViewSet):
    permission_classes = (IsFinanceClient,)
    queryset = Customer.objects.none()

    def retrieve(self, request: Request, customer_id: str) -> Response:
        known_params(request, ("client",))
        client, own_id, _ = finance_target(request, customer_id)
        return Response(customer_privacy().export(client=client, customer_id=own_id))


def _customer_response(client: Any, customer_id: str) -> dict[str, Any]:
    gateway = settings.PAYMENTS_GATEWAY
    customer = selectors.customer_get(client=client, customer_id=customer_id, gateway=gateway)
    return render_customer(customer, gateway=gateway, gateway_reference=customer.gateway_reference)  # type: ignore[attr-defined]


@extend_schema_view(
    create=extend_schema(
        operation_id="customers_setup_intents_create",
        summary="A setup intent for Stripe.js to save a card for off-session use (the customer made when needed)",
        request={"application/json": {"type": "object", "additionalProperties": False, "properties": {}}},
        parameters=[CUSTOMER_ID, *OPTIONAL_KEY],
        responses=openapi.responses({201: SETUP_INTENT}, 402, 409, 415, 422, 502),
    ),
)
class SetupIntentViewSet(viewsets.GenericViewSet):
    permission_classes = (IsStorefrontClient,)
    serializer_class = SetupIntentCreateSerializer
    queryset = Customer.objects.none()

    def create(self, request: Request, customer_id: str) -> Response:
        customer_id = checked_customer_id(customer_id)
        known_params(request, ())
        body_of(request, SetupIntentCreateSerializer)
        client = request_client(request)

        def handler(reference: str) -> Response:
            customer, setup_intent = services.setup_intent_create(
                client=client, customer_id=customer_id, request_reference=reference
            )
            return Response(render_setup_intent(setup_intent, customer_id=customer.customer_id), status=201)

        return run_idempotent(request, required=False, handler=handler)


@extend_schema_view(
    create=extend_schema(
        operation_id="customers_payment_methods_create",
        summary="Attach a gateway token to the customer (made when needed) and save it",
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "required": ["payment_method"],
                "properties": {"payment_method": _token_schema(), "set_default": {"type": "boolean"}},
            }
        },
        parameters=[CUSTOMER_ID, *OPTIONAL_KEY],
        responses=openapi.responses({201: PAYMENT_METHOD}, 402, 409, 415, 422, 502),
    ),
    list=extend_schema(
        operation_id="customers_payment_methods_list",
        parameters=[CUSTOMER_ID, openapi.RETRY_AFTER],
        responses=openapi.responses({200: PAYMENT_METHOD_PAGE}, 404),
    ),
)
class CustomerPaymentMethodViewSet(viewsets.GenericViewSet):
    permission_classes = (IsStorefrontClient,)
    serializer_class = PaymentMethodAttachSerializer
    queryset = PaymentMethod.objects.none()
    pagination_class = None  # one page: no cursor, no page_size
    filter_backends = ()

    def create(self, request: Request, customer_id: str) -> Response:
        customer_id = checked_customer_id(customer_id)
        known_params(request, ())
        data = body_of(request, PaymentMethodAttachSerializer)
        client = request_client(request)

        def handler(_reference: str) -> Response:
            customer, method = services.payment_method_attach(client=client, customer_id=customer_id, **data)
            shown = render_payment_method(
                method,
                customer_id=customer.customer_id,
                is_default=customer.default_payment_method_id == method.pk,
            )
            return Response(shown, status=201)

        return run_idempotent(request, required=False, handler=handler)

    def list(self, request: Request, customer_id: str) -> Response:
        known_params(request, ())
        customer = selectors.customer_get(
            client=request_client(request), customer_id=customer_id, gateway=settings.PAYMENTS_GATEWAY
        )
        methods = selectors.payment_method_list(customer=customer)
        results = [
            render_payment_method(
                method, customer_id=customer.customer_id, is_default=method.pk == customer.default_payment_method_id
            )
            for method in methods
        ]
        return Response({"next": None, "previous": None, "results": results})


@extend_schema_view(
    destroy=extend_schema(
        operation_id="payment_methods_destroy",
        summary="Detach a saved method (at the gateway too); a default is unset",
        parameters=[openapi.path_id("id", "pmt_…"), openapi.RETRY_AFTER],
        responses=openapi.responses({200: PAYMENT_METHOD}, 404, 502),
    ),
)
class PaymentMethodViewSet(viewsets.GenericViewSet):
    permission_classes = (IsStorefrontClient,)
    queryset = PaymentMethod.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def destroy(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        method = selectors.payment_method_get(client=request_client(request), public_id=id)
        detached = services.payment_method_detach(method=method)
        customer = detached.customer
        return Response(
            render_payment_method(
                detached,
                customer_id=customer.customer_id,
                is_default=customer.default_payment_method_id == detached.pk,
            )
        )
