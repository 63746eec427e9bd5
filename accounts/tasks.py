"""Periodic housekeeping of accounts (scheduled in `CELERY_BEAT_SCHEDULE`)."""

from typing import Any

from celery import shared_task

from accounts.services import tokens_purge_expired


@shared_task
def purge_expired_tokens(**kwargs: Any) -> int:
    """Delete the records of expired refresh tokens (the blacklist's tables grow with every token and refresh)."""
    return tokens_purge_expired()
