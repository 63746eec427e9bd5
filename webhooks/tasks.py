"""Webhook tasks: process one stored event (retried with backoff, bounded) and recover missed events."""

import logging
from typing import Any

import stripe
from celery import shared_task
from django.conf import settings

from config.tasks import run_with_retries
from webhooks import services
from webhooks.errors import WebhookProcessingFailed
from webhooks.test_helpers import deliver_simulator_disputes

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=None)
def process_webhook_event(self: Any, *, webhook_event_id: int, **kwargs: Any) -> str:
    """Apply a stored Stripe event once; a failure is retried, then left `failed` for the admin and the command."""

    def exhausted(exc: Exception) -> str:
        logger.error("Stripe event still failing; retries exhausted", extra={"webhook_event_id": webhook_event_id})
        return "failed"

    return run_with_retries(
        self,
        lambda: services.webhook_event_process(webhook_event_id=webhook_event_id).status,
        retry_on=(WebhookProcessingFailed,),
        max_retries=settings.WEBHOOKS_PROCESS_MAX_RETRIES,
        base_seconds=settings.WEBHOOKS_RETRY_BASE_SECONDS,
        max_seconds=settings.WEBHOOKS_RETRY_MAX_SECONDS,
        on_exhausted=exhausted,
    )


@shared_task
def deliver_simulator_events(**kwargs: Any) -> int:
    """Simulator only: hand the disputes it opened by itself to the inbox (scheduled by beat every few seconds)."""
    return deliver_simulator_disputes()


@shared_task
def recover_missed_events(**kwargs: Any) -> int:
    """Store and process the Stripe events that never reached the endpoint (scheduled by beat).

    Events stored but left `received` (their processing could not be enqueued: a broker fault) are
    enqueued again on every run, whatever the gateway: the simulator has no event list, and Stripe's
    may not answer.
    """
    if not settings.STRIPE_SECRET_KEY:
        services.webhook_requeue_stuck()
        return 0  # the simulator has no event list to read
    try:
        result = services.webhook_recover()
    except stripe.StripeError as exc:
        logger.warning(
            "Stripe event recovery could not list events; the next run retries",
            extra={"error": type(exc).__name__, "http_status": exc.http_status},
        )
        services.webhook_requeue_stuck()
        return 0
    return result.stored
