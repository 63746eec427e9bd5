"""Celery tasks of the risk app."""

from celery import shared_task

from risk.services import reviews_sweep


@shared_task
def sweep_reviews() -> dict[str, int]:
    """Report overdue reviews and reject (cancel) those left past the setting, before authorizations expire."""
    return reviews_sweep()
