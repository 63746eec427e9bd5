"""Celery tasks of disputes: the evidence deadline warnings (beat, every 15 minutes)."""

from typing import Any

from celery import shared_task

from disputes.deadlines import dispute_deadlines_warn


@shared_task
def warn_dispute_deadlines(**kwargs: Any) -> int:
    """Warn once per threshold (72 h, 24 h) of each open dispute whose evidence is due soon and not submitted.

    Returns how many warnings were given (idempotent: a second run gives none).
    """
    return len(dispute_deadlines_warn())
