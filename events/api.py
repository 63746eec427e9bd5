"""The event feed API: `GET /api/v1/events/`, and the page helper a subject's own feed uses."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.pagination import page_size_param
from config.api.permissions import request_client
from events import selectors
from events.models import Event
from events.rendering import render_event


def event_page_response(request: Request, feed: QuerySet[Event]) -> Response:
    """One page of a feed, oldest first, with a `next` link that resumes it with `after=`."""
    page_size = page_size_param(request)
    events = selectors.event_page(
        feed=feed, after=request.query_params.get("after"), limit=page_size, client=request_client(request)
    )
    next_url = None
    if len(events) == page_size:
        query = request.query_params.copy()
        query["after"] = events[-1].public_id
        next_url = request.build_absolute_uri(request.path) + "?" + query.urlencode()
    return Response({"next": next_url, "previous": None, "results": [render_event(event) for event in events]})


class EventViewSet(viewsets.GenericViewSet):
    """The event feed, oldest first; `after=evt_…` resumes it without ever skipping an event."""

    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self) -> Any:
        return selectors.event_feed(client=request_client(self.request))

    @extend_schema(
        parameters=[
            OpenApiParameter("type", str),
            OpenApiParameter("payment", str, description="pay_…"),
            OpenApiParameter("after", str, description="evt_…: events after this one"),
            OpenApiParameter("page_size", int),
        ]
    )
    def list(self, request: Request) -> Response:
        params = request.query_params
        feed = selectors.event_feed(
            client=request_client(request),
            type=params.get("type") or None,
            subject_id=params.get("payment") or None,
        )
        return event_page_response(request, feed)
