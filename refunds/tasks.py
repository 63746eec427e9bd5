"""Refund tasks: submit to the gateway, retrying retryable errors with backoff and jitter up to a bound."""

from typing import Any

from celery import shared_task
from django.conf import settings

from config.retry import backoff_seconds
from payments.gateways.base import Retryable
from refunds import services


@shared_task(bind=True, max_retries=None)
def submit_refund(self: Any, *, refund_id: int, **kwargs: Any) -> str:
    """Submit a pending refund with key `re_X:create`; flag it for staff when retries run out."""
    try:
        return services.refund_submit(refund_id=refund_id).status
    except Retryable as exc:
        if self.request.retries >= settings.REFUNDS_SUBMIT_MAX_RETRIES:
            services.refund_mark_needs_attention(refund_id=refund_id, error=f"{type(exc).__name__}: {exc.message}")
            return "needs_attention"
        countdown = backoff_seconds(
            self.request.retries, base=settings.REFUNDS_RETRY_BASE_SECONDS, cap=settings.REFUNDS_RETRY_MAX_SECONDS
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def sweep_stuck_refunds(**kwargs: Any) -> int:
    """Find refunds left pending past the threshold and submit them again with the same key."""
    from refunds.recovery import refunds_sweep_stuck

    return len(refunds_sweep_stuck())
