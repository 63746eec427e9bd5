"""Celery tasks of reconciliation: the daily run, a thin wrapper around the service."""

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import shared_task

from reconciliation.models import RunScope
from reconciliation.services import reconcile


@shared_task
def reconcile_daily(*, fix: bool = False, scope: str = RunScope.ALL, **kwargs: Any) -> str:
    """Reconcile yesterday's payments (UTC) and the customers' saved methods with the gateway (`scope` may
    name one pass); the run and its discrepancies are kept for staff."""
    today = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return reconcile(since=today - timedelta(days=1), until=today, fix=fix, scope=scope).status
