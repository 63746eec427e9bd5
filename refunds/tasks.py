"""Refund tasks: submit to the gateway, retrying retryable errors with backoff and jitter up to a bound."""

import random
from typing import Any

from celery import shared_task
from django.conf import settings

from payments.gateways.base import Retryable
from refunds import services


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(settings.REFUNDS_RETRY_MAX_SECONDS, settings.REFUNDS_RETRY_BASE_SECONDS * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


@shared_task(bind=True, max_retries=None)
def submit_refund(self: Any, *, refund_id: int, **kwargs: Any) -> str:
    """Submit a pending refund with key `re_X:create`; flag it for staff when retries run out."""
    try:
        return services.refund_submit(refund_id=refund_id).status
    except Retryable as exc:
        if self.request.retries >= settings.REFUNDS_SUBMIT_MAX_RETRIES:
            services.refund_mark_needs_attention(refund_id=refund_id, error=f"{type(exc).__name__}: {exc.message}")
            return "needs_attention"
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
