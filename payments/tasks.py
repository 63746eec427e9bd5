"""Celery tasks for payments: thin, idempotent, retried with backoff on retryable gateway errors."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from config.retry import backoff_seconds
from payments import services
from payments.gateways.base import Retryable

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=None)
def settle_payment(self: Any, *, payment_id: int, **kwargs: Any) -> str:
    """Finish a payment's recorded gateway operation with the same gateway idempotency key.

    Retryable gateway errors are retried with backoff and jitter; past the bound the payment is
    flagged `needs_attention` for staff (it keeps its recorded operation, so nothing is lost).
    """
    try:
        return services.payment_settle(payment_id=payment_id).status
    except Retryable as exc:
        if self.request.retries >= settings.PAYMENTS_SETTLE_MAX_RETRIES:
            services.payment_mark_needs_attention(payment_id=payment_id, error=f"{type(exc).__name__}: {exc.message}")
            return "needs_attention"
        countdown = backoff_seconds(
            self.request.retries, base=settings.PAYMENTS_RETRY_BASE_SECONDS, cap=settings.PAYMENTS_RETRY_MAX_SECONDS
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def sweep_stuck_payments(**kwargs: Any) -> int:
    """Find payments whose gateway operation never settled and settle them (same keys)."""
    from payments.recovery import payments_sweep_stuck

    return len(payments_sweep_stuck())


@shared_task
def purge_idempotency_keys(**kwargs: Any) -> int:
    """Delete idempotency keys older than their retention (24 h)."""
    from payments.idempotency import idempotency_purge_expired

    return idempotency_purge_expired()


@shared_task(bind=True, max_retries=3, default_retry_delay=5)
def relay_outbox(self: Any, **kwargs: Any) -> int:
    """Publish unpublished events to the `payment.events` exchange (triggered on commit and swept by beat)."""
    from payments.outbox import PUBLISH_ERRORS, outbox_relay

    try:
        return outbox_relay(batch_size=settings.OUTBOX_BATCH_SIZE)
    except PUBLISH_ERRORS as exc:
        raise self.retry(exc=exc) from exc
