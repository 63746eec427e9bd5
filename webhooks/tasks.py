"""Webhook tasks: process one stored event (retried with backoff, bounded) and recover missed events."""

import logging
import random
from typing import Any

import stripe
from celery import shared_task
from django.conf import settings

from webhooks import services
from webhooks.errors import WebhookProcessingFailed

logger = logging.getLogger(__name__)


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(settings.WEBHOOKS_RETRY_MAX_SECONDS, settings.WEBHOOKS_RETRY_BASE_SECONDS * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


@shared_task(bind=True, max_retries=None)
def process_webhook_event(self: Any, *, webhook_event_id: int, **kwargs: Any) -> str:
    """Apply a stored Stripe event once; a failure is retried, then left `failed` for the admin and the command."""
    try:
        return services.webhook_event_process(webhook_event_id=webhook_event_id).status
    except WebhookProcessingFailed as exc:
        if self.request.retries >= settings.WEBHOOKS_PROCESS_MAX_RETRIES:
            logger.error("Stripe event still failing; retries exhausted", extra={"webhook_event_id": webhook_event_id})
            return "failed"
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task
def recover_missed_events(**kwargs: Any) -> int:
    """Store and process the Stripe events that never reached the endpoint (scheduled by beat)."""
    if not settings.STRIPE_SECRET_KEY:
        return 0  # the simulator has no event list
    try:
        result = services.webhook_recover()
    except stripe.StripeError as exc:
        logger.warning(
            "Stripe event recovery could not list events; the next run retries",
            extra={"error": type(exc).__name__, "http_status": exc.http_status},
        )
        return 0
    return result.stored
