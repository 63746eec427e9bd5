"""Factories for stored Stripe events (the webhook inbox)."""

import json

import factory
from django.utils import timezone

from webhooks.models import IgnoredReason, WebhookEvent, WebhookStatus


class WebhookEventFactory(factory.django.DjangoModelFactory):
    """A stored event, received and not processed yet; its body is a minimal Stripe event of its id and type.

    Traits: processed, ignored (unknown type), failed. Only ignored events carry an ignored reason.
    """

    class Meta:
        model = WebhookEvent

    class Params:
        processed = factory.Trait(
            status=WebhookStatus.PROCESSED, attempts=1, processed_at=factory.LazyFunction(timezone.now)
        )
        ignored = factory.Trait(
            status=WebhookStatus.IGNORED,
            ignored_reason=IgnoredReason.UNKNOWN_TYPE,
            attempts=1,
            processed_at=factory.LazyFunction(timezone.now),
        )
        failed = factory.Trait(status=WebhookStatus.FAILED, attempts=1, last_error="Traceback (most recent call last):")

    stripe_id = factory.Sequence(lambda n: f"evt_factory_{n}")
    type = "payment_intent.succeeded"
    body = factory.LazyAttribute(
        lambda row: json.dumps({"id": row.stripe_id, "object": "event", "type": row.type, "data": {"object": {}}})
    )
    status = WebhookStatus.RECEIVED
