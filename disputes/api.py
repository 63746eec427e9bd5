"""Disputes API: thin views that parse, call one service or selector, and render.

Every API client reads disputes (a storefront those of its own payments, another's is 404, never 403;
finance all). Only finance answers them: evidence and acceptance are finance's (a storefront is 403).
"""

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import schema as openapi
from config.api.fields import StrictBooleanField
from config.api.pagination import CursorPagination, known_params
from config.api.permissions import IsApiClient, IsFinanceClient, request_client
from config.api.serializers import StrictSerializer
from disputes import selectors, services
from disputes.models import Dispute
from disputes.rendering import render_dispute
from disputes.states import DisputeStatus
from gateways.disputes import EVIDENCE_TEXT_FIELDS, EVIDENCE_TEXT_LIMIT
from payments.api import IdentifierFilter, body_of, list_filters
from payments.idempotency import run_idempotent


def _invalid(message: str) -> serializers.ValidationError:
    return serializers.ValidationError(serializers.ErrorDetail(message, code="parameter_invalid"))


class EvidenceSerializer(StrictSerializer):
    evidence = serializers.JSONField(required=False, default=dict)
    submit = StrictBooleanField(required=False, default=False)

    def validate_evidence(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise _invalid("evidence must be an object of Stripe's evidence text fields")
        for name, text in value.items():
            if name not in EVIDENCE_TEXT_FIELDS:
                raise _invalid(f"evidence[{name}] is not an evidence text field")
            if not isinstance(text, str):
                raise _invalid(f"evidence[{name}] must be a string")
        total = sum(len(text) for text in value.values())
        if total > EVIDENCE_TEXT_LIMIT:
            raise _invalid(f"the evidence text fields together may hold at most {EVIDENCE_TEXT_LIMIT} characters")
        return value


class DisputeFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DisputeStatus.choices)
    payment = IdentifierFilter()

    class Meta:
        model = Dispute
        fields = ["status"]


# --- OpenAPI ---------------------------------------------------------------------------------------------
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
NULLABLE_TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}
TIMESTAMP = {"type": "string", "format": "date-time"}
DISPUTE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": "^dp_"},
    "object": {"type": "string", "enum": ["dispute"]},
    "payment": {"type": "string", "pattern": "^pay_"},
    "amount": {"type": "integer"},
    "currency": STRING,
    "reason": {"type": "string", "nullable": True},
    "status": {"type": "string", "enum": list(DisputeStatus.values)},
    "evidence_due_by": NULLABLE_TIMESTAMP,
    "has_evidence": BOOLEAN,
    "evidence_submitted_at": NULLABLE_TIMESTAMP,
    "submission_count": {"type": "integer"},
    "evidence": {"type": "object", "additionalProperties": STRING, "description": "the evidence text fields saved"},
    "funds_withdrawn": BOOLEAN,
    "funds_reinstated": BOOLEAN,
    "is_charge_refundable": BOOLEAN,
    "gateway_reference": STRING,
    "created": TIMESTAMP,
    "updated": TIMESTAMP,
}
DISPUTE = openapi.component(
    "Dispute", {"type": "object", "required": list(DISPUTE_PROPERTIES), "properties": DISPUTE_PROPERTIES}
)
EVIDENCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "evidence": {
            "type": "object",
            "additionalProperties": False,
            "description": f"Stripe's evidence text fields (at most {EVIDENCE_TEXT_LIMIT} characters together; "
            "an empty string clears one); unknown fields are 400 parameter_invalid.",
            "properties": {
                name: {"type": "string", "maxLength": EVIDENCE_TEXT_LIMIT, "pattern": openapi.NO_NUL}
                for name in EVIDENCE_TEXT_FIELDS
            },
        },
        "submit": {"type": "boolean", "description": "send the evidence to the bank (no more changes after)"},
    },
}
DISPUTE_ID = openapi.path_id("id", "dp_…")
OPTIONAL_KEY = [openapi.idempotency_key(required=False), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER]


@extend_schema_view(
    list=extend_schema(
        operation_id="disputes_list",
        parameters=[
            openapi.query("payment", openapi.text(), "the disputed payment (pay_…)"),
            openapi.query("status", {"type": "string", "enum": list(DisputeStatus.values)}),
            openapi.CURSOR,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: openapi.page_of(DISPUTE, "Disputes, newest first.")}, 404),
    ),
    retrieve=extend_schema(
        operation_id="disputes_retrieve",
        parameters=[DISPUTE_ID, openapi.RETRY_AFTER],
        responses=openapi.responses({200: DISPUTE}, 404),
    ),
    evidence=extend_schema(
        operation_id="disputes_evidence_create",
        summary="Finance: save evidence at the gateway and, with submit, send it to the bank",
        request={"application/json": EVIDENCE_SCHEMA},
        parameters=[DISPUTE_ID, *OPTIONAL_KEY],
        responses=openapi.responses({200: DISPUTE}, 404, 409, 415, 422, 502),
    ),
    accept=extend_schema(
        operation_id="disputes_accept_create",
        summary="Finance: accept the dispute (it is lost at once)",
        request=None,
        parameters=[DISPUTE_ID, *OPTIONAL_KEY],
        responses=openapi.responses({200: DISPUTE}, 404, 409, 415, 422, 502),
    ),
)
class DisputeViewSet(viewsets.GenericViewSet):
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[^/]+"
    queryset = Dispute.objects.none()
    serializer_class = EvidenceSerializer  # for the schema
    pagination_class = CursorPagination
    filter_backends = ()

    def get_permissions(self) -> list:
        if self.action in {"list", "retrieve"}:
            return [IsApiClient()]
        return [IsFinanceClient()]

    def list(self, request: Request) -> Response:
        rows = selectors.dispute_list(client=request_client(request), filters=list_filters(request, DisputeFilter))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([render_dispute(row) for row in page or []])

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        return Response(render_dispute(selectors.dispute_get(client=request_client(request), public_id=id)))

    @action(detail=True, methods=["post"])
    def evidence(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        client = request_client(request)
        dispute = selectors.dispute_get(client=client, public_id=id)
        data = body_of(request, EvidenceSerializer)

        def handler(_reference: str) -> Response:
            done = services.dispute_evidence_update(
                dispute=dispute, evidence=data["evidence"], submit=data["submit"], actor=client
            )
            return Response(render_dispute(selectors.dispute_get(client=client, public_id=done.public_id)))

        return run_idempotent(request, required=False, handler=handler)

    @action(detail=True, methods=["post"])
    def accept(self, request: Request, id: str) -> Response:  # noqa: A002
        known_params(request, ())
        client = request_client(request)
        dispute = selectors.dispute_get(client=client, public_id=id)

        def handler(_reference: str) -> Response:
            done = services.dispute_accept(dispute=dispute, actor=client)
            return Response(render_dispute(selectors.dispute_get(client=client, public_id=done.public_id)))

        return run_idempotent(request, required=False, handler=handler)
