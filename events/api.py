"""The event feed API: `GET /api/v1/events/`, and the page helper a subject's own feed uses."""

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from config.api import schema as openapi
from config.api.fields import unsafe_identifier
from config.api.pagination import known_params, page_size_param
from config.api.permissions import request_client
from config.api.rendering import iso
from events import selectors

EVENT = openapi.component(
    "Event",
    {
        "type": "object",
        "required": ["id", "object", "type", "created", "sequence", "schema_version", "payment", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_"},
            "object": {"type": "string", "enum": ["event"]},
            "type": {"type": "string", "description": "payment.captured, refund.succeeded, ..."},
            "created": {"type": "string", "format": "date-time"},
            "sequence": {"type": "integer"},
            "schema_version": {"type": "integer", "enum": [1], "description": "the event object's version"},
            "payment": {"type": "string", "nullable": True, "description": "the pay_… id, or null"},
            "data": {
                "type": "object",
                "required": ["object"],
                "properties": {
                    "object": {
                        "type": "object",
                        "description": "the payment, refund, … as it was then, without secrets or personal data",
                    }
                },
            },
        },
    },
)
EVENT_PAGE = openapi.page_of(EVENT, "Events, oldest first; `next` resumes the feed with `after=`.")
AFTER = openapi.query("after", openapi.text(), "evt_…: the events after this one (one this client cannot see is 400)")


def render_event_row(row: Sequence[Any]) -> dict[str, Any]:
    """An event from a feed row (`selectors.FEED_FIELDS`): the shape of `events.rendering.render_event`."""
    public_id, type_, created_at, sequence, schema_version, subject_type, subject_id, data = row
    return {
        "id": public_id,
        "object": "event",
        "type": type_,
        "created": iso(created_at),
        "sequence": sequence,
        "schema_version": schema_version,
        "payment": subject_id if subject_type == "payment" else None,
        "data": {"object": data},
    }


def event_page_response(
    request: Request,
    *,
    client: User,
    event_type: str | None = None,
    subject_id: str | None = None,
    filters: Sequence[str] = (),
) -> Response:
    """One page of a client's feed, oldest first, with a `next` link that resumes it with `after=`.

    `filters` are the query parameters the endpoint takes besides `after` and `page_size`.
    """
    known_params(request, [*filters, "after", "page_size"])
    for name in ("after", *filters):
        if unsafe_identifier(request.query_params.get(name, "")):
            detail = ErrorDetail(f"{name}: must not contain control characters or surrounding whitespace.")
            raise ValidationError({name: [detail]})
    page_size = page_size_param(request)
    rows = selectors.event_page(
        client=client,
        after=request.query_params.get("after"),
        limit=page_size,
        event_type=event_type,
        subject_id=subject_id,
    )
    next_url = None
    if len(rows) == page_size:
        query = request.query_params.copy()
        query["after"] = rows[-1][0]
        next_url = request.build_absolute_uri(request.path) + "?" + query.urlencode()
    return Response({"next": next_url, "previous": None, "results": [render_event_row(row) for row in rows]})


class EventViewSet(viewsets.GenericViewSet):
    """The event feed, oldest first; `after=evt_…` resumes it without ever skipping an event."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    pagination_class = None  # hand-paged with `after=` (event_page_response), never DRF's cursor

    def get_queryset(self) -> Any:
        return selectors.visible_to(request_client(self.request))

    @extend_schema(
        parameters=[
            openapi.query("type", openapi.text(), "only events of this type"),
            openapi.query("payment", openapi.text(), "pay_…: only this payment's events"),
            AFTER,
            openapi.PAGE_SIZE,
            openapi.RETRY_AFTER,
        ],
        responses=openapi.responses({200: EVENT_PAGE}),
    )
    def list(self, request: Request) -> Response:
        params = request.query_params
        return event_page_response(
            request,
            client=request_client(request),
            event_type=params.get("type") or None,
            subject_id=params.get("payment") or None,
            filters=("type", "payment"),
        )
