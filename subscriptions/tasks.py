"""Subscription tasks: an invoice's charge recorded as a payment, a subscription made what the gateway says now."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from config.tasks import run_with_retries
from gateways.base import Retryable
from subscriptions import services

logger = logging.getLogger(__name__)


def _gave_up(exc: Exception) -> bool:
    # The webhook stays processed; the invoice's next event, or reconciliation, brings it up to date.
    logger.error("Billing sync gave up: retries exhausted", extra={"error": f"{type(exc).__name__}: {exc}"})
    return False


def _retried(task: Any, work: Any) -> Any:
    return run_with_retries(
        task,
        work,
        retry_on=(Retryable,),
        max_retries=settings.PAYMENTS_SETTLE_MAX_RETRIES,
        base_seconds=settings.PAYMENTS_RETRY_BASE_SECONDS,
        max_seconds=settings.PAYMENTS_RETRY_MAX_SECONDS,
        on_exhausted=_gave_up,
    )


@shared_task(bind=True, max_retries=None)
def sync_invoice_payment(self: Any, *, invoice_id: int, **kwargs: Any) -> str:
    """Read the intent of an attempted invoice and record it as the invoice's `pay_` payment (once per intent)."""
    payment = _retried(self, lambda: services.invoice_payment_sync(invoice_id=invoice_id))
    return payment.public_id if payment else ""


@shared_task(bind=True, max_retries=None)
def sync_subscription(self: Any, *, gateway: str, reference: str, **kwargs: Any) -> bool:
    """Read the gateway's subscription (news of the same period) and apply it."""
    return bool(_retried(self, lambda: services.subscription_sync(gateway_name=gateway, reference=reference)))
