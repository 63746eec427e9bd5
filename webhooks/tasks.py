"""Webhook tasks: drain the stored events (debounced, one task for any backlog), retry one failed event with
backoff (bounded), and recover missed events."""

import logging
from typing import Any

import stripe
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from config.celery import app
from config.tasks import backoff_seconds, publish, run_with_retries
from webhooks import services
from webhooks.errors import WebhookProcessingFailed
from webhooks.locks import WEBHOOK_DRAIN_GUARD_KEY
from webhooks.test_helpers import deliver_simulator_disputes

logger = logging.getLogger(__name__)


def _log_exhausted(webhook_event_id: int) -> str:
    logger.error("Stripe event still failing; retries exhausted", extra={"webhook_event_id": webhook_event_id})
    return "failed"


@shared_task(bind=True, max_retries=None)
def process_webhook_event(self: Any, *, webhook_event_id: int, **kwargs: Any) -> str:
    """Apply a stored Stripe event once; a failure is retried, then left `failed` for the admin and the command.

    The drain hands over the events that failed in it, as this task's first retry (see `_retry_failed`).
    """
    return run_with_retries(
        self,
        lambda: services.webhook_event_process(webhook_event_id=webhook_event_id).status,
        retry_on=(WebhookProcessingFailed,),
        max_retries=settings.WEBHOOKS_PROCESS_MAX_RETRIES,
        base_seconds=settings.WEBHOOKS_RETRY_BASE_SECONDS,
        max_seconds=settings.WEBHOOKS_RETRY_MAX_SECONDS,
        on_exhausted=lambda exc: _log_exhausted(webhook_event_id),
    )


def _retry_failed(webhook_event_id: int) -> None:
    """Retry an event that failed in the drain as `process_webhook_event` retries itself: the drain's attempt
    was its first run, so the same backoff and the same bound follow, and the event ends `failed` as before.

    Inline (eager: tests, `make run`) there is no broker to retry with: the event is left `failed` at once.
    """
    if settings.WEBHOOKS_PROCESS_MAX_RETRIES < 1:
        _log_exhausted(webhook_event_id)
        return
    if app.conf.task_always_eager:
        logger.error("Stripe event failed; not retried inline", extra={"webhook_event_id": webhook_event_id})
        return
    countdown = backoff_seconds(0, base=settings.WEBHOOKS_RETRY_BASE_SECONDS, cap=settings.WEBHOOKS_RETRY_MAX_SECONDS)
    retry = process_webhook_event.signature(kwargs={"webhook_event_id": webhook_event_id}, retries=1)
    publish(retry, countdown=countdown)  # a retry not sent leaves the event `failed`: the admin and command see it


@shared_task
def drain_received_events(**kwargs: Any) -> int:
    """Process every stored event left `received`, oldest first (sent after the commits that store events,
    debounced; by the recovery task for events left behind). Returns how many were processed."""
    finished = False
    try:
        result = services.webhook_events_drain(
            on_failure=_retry_failed,
            batch_size=settings.WEBHOOKS_DRAIN_BATCH_SIZE,
            limit=settings.WEBHOOKS_DRAIN_MAX_PER_RUN,
            on_empty=_clear_guard,  # while it stands, commits send nothing: this run reads their rows
        )
        finished = True
    finally:
        if not finished:  # a run that failed (the database gone) leaves no guard standing: the next commit sends one
            _clear_guard()
    if result.more:
        publish(drain_received_events)  # the rest in a new run (each run is bounded, like any task)
    return result.processed


def _clear_guard() -> None:
    """From here a commit sends a drain of its own (the drain reads once more for the commits before)."""
    try:
        cache.delete(WEBHOOK_DRAIN_GUARD_KEY)
    except (RedisError, OSError):  # a guard left standing expires by itself (seconds); the recovery task is behind
        logger.warning("Webhook drain guard not cleared", exc_info=True)


@shared_task
def deliver_simulator_events(**kwargs: Any) -> int:
    """Simulator only: hand the disputes it opened by itself to the inbox (scheduled by beat every few seconds)."""
    return deliver_simulator_disputes()


@shared_task
def recover_missed_events(**kwargs: Any) -> int:
    """Store and process the Stripe events that never reached the endpoint (scheduled by beat).

    When events stored are left `received` (their drain was never sent: a broker fault), a drain is
    sent on every run, whatever the gateway: the simulator has no event list, and Stripe's may not answer.
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
