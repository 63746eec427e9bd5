"""Celery tasks of the outbox: the relay (triggered after each commit that wrote events, and swept by beat)."""

from typing import Any

from celery import shared_task
from django.conf import settings

from events.relay import PUBLISH_ERRORS, outbox_relay


@shared_task(bind=True, max_retries=3, default_retry_delay=5)
def relay_outbox(self: Any, **kwargs: Any) -> int:
    """Publish unpublished events to the `payment.events` exchange."""
    try:
        return outbox_relay(batch_size=settings.OUTBOX_BATCH_SIZE)
    except PUBLISH_ERRORS as exc:
        raise self.retry(exc=exc) from exc
