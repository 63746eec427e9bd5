"""Celery tasks for payments: thin, idempotent, retried with backoff on retryable gateway errors."""

from typing import Any

from celery import shared_task
from django.conf import settings

from config.tasks import run_with_retries
from gateways.base import Retryable
from payments import services
from payments.idempotency import idempotency_purge_expired


@shared_task(bind=True, max_retries=None)
def settle_payment(self: Any, *, payment_id: int, **kwargs: Any) -> str:
    """Finish a payment's recorded gateway operation with the same gateway idempotency key.

    Retryable gateway errors are retried with backoff and jitter; past the bound the payment is
    flagged `needs_attention` for staff (it keeps its recorded operation, so nothing is lost).
    """

    def exhausted(exc: Exception) -> str:
        services.payment_mark_needs_attention(payment_id=payment_id, error=f"{type(exc).__name__}: {exc}")
        return "needs_attention"

    return run_with_retries(
        self,
        lambda: services.payment_settle(payment_id=payment_id).status,
        retry_on=(Retryable,),
        max_retries=settings.PAYMENTS_SETTLE_MAX_RETRIES,
        base_seconds=settings.PAYMENTS_RETRY_BASE_SECONDS,
        max_seconds=settings.PAYMENTS_RETRY_MAX_SECONDS,
        on_exhausted=exhausted,
    )


@shared_task
def sweep_stuck_payments(**kwargs: Any) -> int:
    """Find payments whose gateway operation never settled and settle them (same keys)."""
    return len(services.payments_sweep_stuck())


@shared_task
def purge_idempotency_keys(**kwargs: Any) -> int:
    """Delete idempotency keys older than their retention (24 h)."""
    return idempotency_purge_expired()
