"""Refunds API: create (Idempotency-Key required), list per payment, retrieve, list all."""

from typing import Any

import django_filters
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.fields import StrictIntegerField
from config.api.permissions import IsApiClient, request_client
from config.api.ratelimit import enforce_rate_limit
from config.api.serializers import StrictSerializer
from payments.api import body_of, validate_metadata
from payments.idempotency import run_idempotent
from payments.selectors import payment_get
from refunds import selectors, services
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


class PaymentRefundViewSet(viewsets.GenericViewSet):
    """Refunds of one payment. Storefronts reach their own payments; finance clients any."""

    permission_classes = (IsApiClient,)
    serializer_class = RefundCreateSerializer

    def get_queryset(self) -> Any:
        return selectors.refund_queryset_for(client=request_client(self.request))

    def create(self, request: Request, payment_id: str) -> Response:
        client = request_client(request)
        payment = payment_get(client=client, public_id=payment_id)
        data = body_of(request, RefundCreateSerializer)
        enforce_rate_limit(request, group="refunds.create", rate_setting="RATELIMIT_REFUND_CREATE")

        def handler(reference: str) -> Response:
            refund = services.refund_create(payment=payment, requested_by=client, idempotency_key=reference, **data)
            return Response(render_refund(refund), status=201)

        return run_idempotent(request, required=True, handler=handler)

    def list(self, request: Request, payment_id: str) -> Response:
        payment = payment_get(client=request_client(request), public_id=payment_id)
        page = self.paginate_queryset(self.get_queryset().filter(payment=payment))
        return self.get_paginated_response([render_refund(refund) for refund in page or []])


class RefundViewSet(viewsets.GenericViewSet):
    """All refunds the client may see, newest first."""

    permission_classes = (IsApiClient,)
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    filterset_class = RefundFilter

    def get_queryset(self) -> Any:
        return selectors.refund_queryset_for(client=request_client(self.request))

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        return Response(render_refund(selectors.refund_get(client=request_client(request), public_id=id)))

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([render_refund(refund) for refund in page or []])
