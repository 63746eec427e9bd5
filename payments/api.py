"""Payments API: thin views that parse, call one service or selector, and render."""

import re
from typing import Any

import django_filters
from django_filters.utils import translate_validation
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from config.api.permissions import IsApiClient, IsStorefrontClient, request_client
from config.api.serializers import StrictSerializer
from events.api import event_page_response
from payments import reads, selectors, services
from payments.idempotency import run_idempotent, run_idempotent_service
from payments.models import CaptureMethod, Payment
from payments.money import MAX_AMOUNT, format_amount, get_currency, is_supported
from payments.rendering import render_payment, render_payment_row
from payments.states import PaymentStatus

_PAYMENT_METHOD = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
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
    currency = StrictCharField(max_length=3, min_length=3)
    customer_id = StrictCharField(max_length=255)
    order_id = StrictCharField(max_length=255, required=False, default="")
    description = StrictCharField(max_length=1000, required=False, default="", allow_blank=True)
    metadata = serializers.JSONField(required=False, default=dict, validators=[validate_metadata])
    capture_method = serializers.ChoiceField(choices=CaptureMethod.values, required=False, default="automatic")
    payment_method = StrictCharField(max_length=255, required=False, default="")
    confirm = StrictBooleanField(required=False, default=False)
    customer_email = serializers.EmailField(required=False, default="")
    customer_ip = serializers.IPAddressField(required=False, default=None)

    def validate_currency(self, value: str) -> str:
        code = value.lower()
        if not is_supported(code):
            raise _error(f"currency {value!r} is not supported", "currency_not_supported")
        return code

    def validate_payment_method(self, value: str) -> str:
        if value and not _PAYMENT_METHOD.match(value):
            raise _error("payment_method must be a gateway token such as pm_card_visa", "parameter_invalid")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        validate_amount(attrs["amount"], attrs["currency"])
        if attrs["confirm"] and not attrs["payment_method"]:
            raise _field_error("payment_method", "payment_method is required with confirm: true", "parameter_missing")
        return attrs


class PaymentConfirmSerializer(StrictSerializer):
    payment_method = StrictCharField(max_length=255, required=False, default="")

    validate_payment_method = PaymentCreateSerializer.validate_payment_method


class PaymentCaptureSerializer(StrictSerializer):
    amount = StrictIntegerField(required=False, default=None)

    def validate_amount(self, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise _error("amount must be a positive integer", "parameter_invalid")
        return value


class PaymentCancelSerializer(StrictSerializer):
    reason = serializers.ChoiceField(choices=CANCELLATION_REASONS, required=False, default="")


class PaymentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PaymentStatus.choices)
    customer_id = django_filters.CharFilter()
    order_id = django_filters.CharFilter()
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
    if not any(name in request.query_params for name in fields):
        return {}
    filterset = filterset_class(request.query_params, queryset=filterset_class._meta.model._default_manager.none())
    if not filterset.is_valid():
        raise translate_validation(filterset.errors)
    return dict(filterset.form.cleaned_data)


def body_of(request: Request, serializer_class: type[StrictSerializer]) -> dict[str, Any]:
    """Validate the body (an empty body counts as `{}`)."""
    data = request.data if request.body else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


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

    @extend_schema(responses={201: dict})
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

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("customer_id", str),
            OpenApiParameter("order_id", str),
            OpenApiParameter("created_gte", str, description="ISO 8601"),
            OpenApiParameter("created_lt", str, description="ISO 8601"),
        ]
    )
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
