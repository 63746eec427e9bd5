"""Celery tasks of the outbox: the relay (triggered after each commit that wrote events, and swept by beat)."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from events.locks import RELAY_GUARD_KEY
from events.relay import PUBLISH_ERRORS, outbox_relay

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, default_retry_delay=5)
def relay_outbox(self: Any, **kwargs: Any) -> int:
    """Publish unpublished events to the `payment.events` exchange."""
    # Cleared before reading the outbox: a commit after this point schedules a relay of its own.
    try:
        cache.delete(RELAY_GUARD_KEY)
    except Exception:  # noqa: BLE001 - a guard left standing expires by itself; publishing matters more
        logger.warning("Relay guard not cleared", exc_info=True)
    try:
        return outbox_relay(batch_size=settings.OUTBOX_BATCH_SIZE)
    except PUBLISH_ERRORS as exc:
        raise self.retry(exc=exc) from exc
