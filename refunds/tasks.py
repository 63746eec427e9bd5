"""Refund tasks: submit new refunds in batches; retry one with backoff and jitter up to a bound; sweep stuck ones."""

from typing import Any

from celery import shared_task
from django.conf import settings

from config.tasks import run_with_retries
from gateways.base import Retryable
from refunds import services


@shared_task(bind=True, max_retries=None)
def submit_refund(self: Any, *, refund_id: int, **kwargs: Any) -> str:
    """Submit a pending refund with key `re_X:create`; flag it for staff when retries run out."""

    def exhausted(exc: Exception) -> str:
        services.refund_mark_needs_attention(refund_id=refund_id, error=f"{type(exc).__name__}: {exc}")
        return "needs_attention"

    return run_with_retries(
        self,
        lambda: services.refund_submit(refund_id=refund_id).status,
        retry_on=(Retryable,),
        max_retries=settings.REFUNDS_SUBMIT_MAX_RETRIES,
        base_seconds=settings.REFUNDS_RETRY_BASE_SECONDS,
        max_seconds=settings.REFUNDS_RETRY_MAX_SECONDS,
        on_exhausted=exhausted,
    )


@shared_task
def submit_new_refunds(**kwargs: Any) -> int:
    """Submit the refunds created since the last run, their gateway calls at once (`refunds.services.batch`)."""
    return services.refunds_submit_new()


@shared_task
def sweep_stuck_refunds(**kwargs: Any) -> int:
    """Find refunds left pending past the threshold and submit them again with the same key."""
    return len(services.refunds_sweep_stuck())
