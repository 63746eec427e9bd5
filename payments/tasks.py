"""Celery tasks for payments: thin, idempotent, retried with backoff on retryable gateway errors."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from payments import services
from payments.gateways.base import Retryable

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    autoretry_for=(Retryable,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.PAYMENTS_SETTLE_MAX_RETRIES,
)
def settle_payment(self: Any, *, payment_id: int, **kwargs: Any) -> str:
    """Finish a payment's recorded gateway operation with the same gateway idempotency key."""
    payment = services.payment_settle(payment_id=payment_id)
    return payment.status


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
