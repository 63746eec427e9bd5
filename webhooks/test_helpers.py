"""The simulator's billing clock (like Stripe's test clocks): `POST /api/v1/test_helpers/advance_clock/`, and the
hand-over of the disputes the simulator opens by itself (`pm_card_createDispute`).

Only with `PAYMENTS_GATEWAY=simulator` (404 otherwise). Moves the client's simulated billing time forward; the
simulator does what falls due and returns the events Stripe would send, which are delivered here signed with
`STRIPE_WEBHOOK_SECRET` through the same inbox as Stripe's (`webhook_receive`: stored once by event id), then
processed as the inbox processes them, in order.
"""

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from config.api import schema as openapi
from config.api.fields import StrictIntegerField
from config.api.pagination import known_params
from config.api.permissions import IsStorefrontClient, request_client
from config.api.rendering import iso
from config.api.serializers import StrictSerializer
from gateways import get_gateway
from gateways.base import GatewayUnavailable
from gateways.simulator import SimulatorGateway
from payments.api import body_of
from payments.errors import GatewayUnavailableError
from payments.idempotency import run_idempotent
from subscriptions.services import clock_of
from webhooks.errors import WebhookProcessingFailed
from webhooks.services import webhook_event_process, webhook_receive

logger = logging.getLogger(__name__)
MAX_SECONDS = 3 * 365 * 24 * 3600  # three years


def is_simulator() -> bool:
    return settings.PAYMENTS_GATEWAY == "simulator"


def stripe_signature(payload: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send: `t=<ts>,v1=<HMAC-SHA256 of "<ts>.<body>">`."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"


def deliver_event(event: dict[str, Any]) -> None:
    """Deliver one simulated event through the inbox, signed, and process it now (a duplicate: nothing)."""
    payload = json.dumps(event).encode()
    row = webhook_receive(payload=payload, signature=stripe_signature(payload, secret=settings.STRIPE_WEBHOOK_SECRET))
    if row is None:
        return
    try:
        webhook_event_process(webhook_event_id=row.pk)
    except WebhookProcessingFailed:  # kept `failed` in the inbox for the operators' reprocess, like Stripe's
        logger.exception("A simulated billing event failed", extra={"stripe_event": event.get("id")})


def deliver_simulator_disputes() -> int:
    """Deliver the dispute events the simulator queued (a charge paid with `pm_card_createDispute` is disputed as
    it succeeds), oldest first, each handed over once however many callers drain at the same time. Returns how
    many. The beat task `webhooks.tasks.deliver_simulator_events` runs it every few seconds ("moments later", as on
    Stripe); advancing a billing clock runs it too. Nothing happens off the simulator."""
    if not is_simulator():
        return 0
    events = SimulatorGateway.pending_dispute_events()
    for event in events:
        deliver_event(event)
    if events:
        logger.info("Simulator disputes delivered", extra={"events": len(events)})
    return len(events)


def advance_clock(*, client: User, seconds: int) -> datetime:
    """Move the client's simulated billing clock forward and deliver what fell due. Returns the new time.

    :raises NotFound: the gateway is not the simulator.
    :raises GatewayUnavailableError: the clock is busy with a concurrent advance (502); nothing moved.
    """
    if not is_simulator():
        raise NotFound()
    gateway: Any = get_gateway()
    try:
        now, events = gateway.advance_clock(clock=clock_of(client), seconds=seconds)
    except GatewayUnavailable as exc:  # the clock was busy (a concurrent advance): nothing moved, try again
        raise GatewayUnavailableError() from exc
    for event in events:
        deliver_event(event)
    deliver_simulator_disputes()
    logger.info("Simulator clock advanced", extra={"client": client.pk, "seconds": seconds, "events": len(events)})
    return now


class AdvanceClockSerializer(StrictSerializer):
    seconds = StrictIntegerField()

    def validate_seconds(self, value: int) -> int:
        if not 1 <= value <= MAX_SECONDS:
            raise serializers.ValidationError(
                serializers.ErrorDetail(f"seconds must be 1 to {MAX_SECONDS} (3 years)", code="parameter_invalid")
            )
        return value


NOW = openapi.component(
    "SimulatorClock",
    {"type": "object", "required": ["now"], "properties": {"now": {"type": "string", "format": "date-time"}}},
)


class AdvanceClockView(APIView):
    permission_classes = (IsStorefrontClient,)
    serializer_class = AdvanceClockSerializer

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not is_simulator():
            raise NotFound()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="test_helpers_advance_clock",
        summary="Simulator only: move this client's billing clock forward, running what falls due",
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "required": ["seconds"],
                "properties": {"seconds": {"type": "integer", "minimum": 1, "maximum": MAX_SECONDS}},
            }
        },
        parameters=[openapi.idempotency_key(required=False), openapi.IDEMPOTENT_REPLAYED, openapi.RETRY_AFTER],
        responses=openapi.responses({200: NOW}, 404, 409, 415, 422, 502),
    )
    def post(self, request: Request) -> Response:
        known_params(request, ())
        data = body_of(request, AdvanceClockSerializer)
        client = request_client(request)
        return run_idempotent(
            request,
            required=False,
            handler=lambda _reference: Response({"now": iso(advance_clock(client=client, seconds=data["seconds"]))}),
        )


urlpatterns = [path("advance_clock/", AdvanceClockView.as_view(), name="test-helpers-advance-clock")]
