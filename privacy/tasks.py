"""Celery tasks of privacy: thin, idempotent, each one service call."""

import logging
from typing import Any

from celery import shared_task

from privacy.services import webhook_payloads_purge, webhooks_of_erased_customers_redact

logger = logging.getLogger(__name__)


@shared_task(bind=True, ignore_result=True)
def purge_webhook_payloads(self: Any, **kwargs: Any) -> int:
    """Daily: webhook payloads past their retention reduced to ids and outcome; late ones of erased customers too."""
    return webhook_payloads_purge() + webhooks_of_erased_customers_redact()
