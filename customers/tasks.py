"""Customer tasks: make our record of a gateway customer or saved method what the gateway says now."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from config.tasks import run_with_retries
from customers import services
from gateways.base import Retryable

logger = logging.getLogger(__name__)


def _gave_up(exc: Exception) -> bool:
    # The webhook stays processed; the next event about the object, or reconciliation, brings it up to date.
    logger.error("Gateway sync gave up: retries exhausted", extra={"error": f"{type(exc).__name__}: {exc}"})
    return False


@shared_task(bind=True, max_retries=None)
def sync_customer(self: Any, *, gateway: str, reference: str, **kwargs: Any) -> bool:
    """Read the gateway's customer (after `customer.updated`) and apply it; retried while the gateway is away."""
    return run_with_retries(
        self,
        lambda: services.customer_sync(gateway_name=gateway, reference=reference),
        retry_on=(Retryable,),
        max_retries=settings.PAYMENTS_SETTLE_MAX_RETRIES,
        base_seconds=settings.PAYMENTS_RETRY_BASE_SECONDS,
        max_seconds=settings.PAYMENTS_RETRY_MAX_SECONDS,
        on_exhausted=_gave_up,
    )


@shared_task(bind=True, max_retries=None)
def sync_payment_method(self: Any, *, gateway: str, reference: str, **kwargs: Any) -> bool:
    """Read the gateway's method (after `setup_intent.succeeded`, `payment_method.attached`) and save or detach it."""
    return run_with_retries(
        self,
        lambda: services.payment_method_sync(gateway_name=gateway, reference=reference),
        retry_on=(Retryable,),
        max_retries=settings.PAYMENTS_SETTLE_MAX_RETRIES,
        base_seconds=settings.PAYMENTS_RETRY_BASE_SECONDS,
        max_seconds=settings.PAYMENTS_RETRY_MAX_SECONDS,
        on_exhausted=_gave_up,
    )
