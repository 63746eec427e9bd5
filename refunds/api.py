"""Refunds API: create (Idempotency-Key required), list per payment, retrieve, list all."""

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiRole
from config.api import schema as openapi
from config.api.fields import StrictIntegerField
from config.api.pagination import PAGE_PARAMS, known_params
from config.api.permissions import IsApiClient, request_client
from config.api.serializers import StrictSerializer
from payments.api import METADATA_SCHEMA, body_of, list_filters, validate_metadata
from payments.idempotency import KeyClaim, run_idempotent_service
from payments.locks import PaymentOf
from payments.models import Payment
from payments.money import MAX_AMOUNT
from payments.reads import RowCursorPagination, RowQuery, payment_row
from refunds import reads, selectors, services
from refunds.models import Refund, RefundReason
from refunds.rendering import render_refund
from refunds.states import RefundStatus


class RefundCreateSerializer(StrictSerializer):
    amount = StrictIntegerField(required=False, default=None)
    reason = serializers.ChoiceField(choices=RefundReason.values, required=False, default="")
    metadata = serializers.JSONField(required=False, default=dict, validators=[validate_metadata])

    def validate_amount(self, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise serializers.ValidationError(
                serializers.ErrorDetail("amount must be a positive integer", code="parameter_invalid")
            )
        return value


class RefundFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RefundStatus.choices)
    created_gte = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_lt = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Refund
        fields = ["status"]


REFUND = openapi.component(
    "Refund",
    {
        "type": "object",
        "required": [
            "id",
            "object",
            "payment",
            "amount",
            "currency",
            "status",
            "reason",
            "failure_reason",
            "metadata",
            "created",
            "updated",
        ],  # fmt: skip
        "properties": {
            "id": {"type": "string", "pattern": "^re_"},
            "object": {"type": "string", "enum": ["refund"]},
            "payment": {"type": "string", "pattern": "^pay_"},
            "amount": {"type": "integer"},
            "currency": {"type": "string"},
            "status": {"type": "string", "enum": list(RefundStatus.values)},
            "reason": {"type": "string", "enum": list(RefundReason.values), "nullable": True},
            "failure_reason": {"type": "string", "nullable": True},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "created": {"type": "string", "format": "date-time"},
            "updated": {"type": "string", "format": "date-time"},
        },
    },
)
REFUND_PAGE = openapi.page_of(REFUND, "Refunds, newest first.")
PAYMENT_ID = openapi.path_id("payment_id", "pay_…")
openapi.link("payments_refunds_create", 201, "retrieve", "refunds_retrieve", id="$response.body#/id")


@extend_schema_view(
    create=extend_schema(
        summary="Refund a payment (all that is left by default)",
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "amount": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_AMOUNT,
                        "description": "At most what is left to refund, counting pending refunds (more is 400 "
                        "amount_too_large); what is left by default.",
                    },
                    "reason": {"type": "string", "enum": list(RefundReason.values)},
                    "metadata": METADATA_SCHEMA,
                },
            }
        },
        parameters=[
            PAYMENT_ID,
            openapi.idempotency_key(required=True),
            openapi.IDEMPOTENT_REPLAYED,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({201: REFUND}, 404, 409, 415, 422, 502),
    ),
    list=extend_schema(
        operation_id="payments_refunds_list",
        parameters=[PAYMENT_ID, openapi.CURSOR, openapi.PAGE_SIZE, openapi.RETRY_AFTER],
        responses=openapi.responses({200: REFUND_PAGE}, 404),
    ),
)
class PaymentRefundViewSet(viewsets.GenericViewSet):
    """Refunds of one payment. Storefronts reach their own payments; finance clients any."""

    permission_classes = (IsApiClient,)
    serializer_class = RefundCreateSerializer

    def get_queryset(self) -> Any:
        return selectors.refund_queryset_for(client=request_client(self.request))

    def create(self, request: Request, payment_id: str) -> Response:
        client = request_client(request)
        data = body_of(request, RefundCreateSerializer)
        # Found by its lock, in the refund's transaction: 404 unless the client may refund it (finance: any).
        payment = PaymentOf(payment_id, None if client.api_role == ApiRole.FINANCE else client.pk)

        def refund(claim: KeyClaim[Refund] | None) -> Refund:
            try:
                return services.refund_create(payment_id=payment, requested_by=client, claim=claim, **data)
            except Payment.DoesNotExist as exc:
                raise NotFound() from exc

        return run_idempotent_service(
            request, required=True, service=refund, render=lambda refund: (201, render_refund(refund))
        )

    def list(self, request: Request, payment_id: str) -> Response:
        client = request_client(request)
        known_params(request, PAGE_PARAMS)
        payment_row(client=client, public_id=payment_id)  # 404 unless the client may see the payment
        return _refund_page(request, self, reads.refund_rows(client=client, filters={}, payment_id=payment_id))


@extend_schema_view(
    retrieve=extend_schema(
        operation_id="refunds_retrieve",
        parameters=[openapi.path_id("id", "re_…"), openapi.RETRY_AFTER],
        responses=openapi.responses({200: REFUND}, 404),
    ),
    list=extend_schema(
        operation_id="refunds_list",
        parameters=[
            openapi.query("status", {"type": "string", "enum": list(RefundStatus.values)}),
            openapi.query("created_gte", openapi.ISO_DATETIME, "ISO 8601"),
            openapi.query("created_lt", openapi.ISO_DATETIME, "ISO 8601"),
            openapi.CURSOR,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: REFUND_PAGE}, 404),
    ),
)
class RefundViewSet(viewsets.GenericViewSet):
    """All refunds the client may see, newest first."""

    permission_classes = (IsApiClient,)
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    filterset_class = RefundFilter

    def get_queryset(self) -> Any:
        return selectors.refund_queryset_for(client=request_client(self.request))

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        return Response(reads.render_refund_row(reads.refund_row(client=request_client(request), public_id=id)))

    def list(self, request: Request) -> Response:
        filters = list_filters(request, RefundFilter)
        return _refund_page(request, self, reads.refund_rows(client=request_client(request), filters=filters))


def _refund_page(request: Request, view: Any, rows: RowQuery) -> Response:
    paginator = RowCursorPagination()
    page = paginator.paginate_rows(rows, request, view)
    return paginator.get_paginated_response([reads.render_refund_row(row) for row in page])
