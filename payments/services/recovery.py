"""Recovery of payments whose gateway operation never settled (a crash, a lost answer, a worker gone)."""

import logging
from datetime import timedelta

from config.tasks import enqueue
from payments.selectors import payments_stuck
from payments.services.operations import SETTLE_TASK

logger = logging.getLogger(__name__)


def payments_sweep_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Enqueue a settle (same gateway keys) for every stuck payment; returns their ids."""
    ids = list(payments_stuck(older_than=older_than).values_list("pk", flat=True)[:1000])
    for payment_id in ids:
        enqueue(SETTLE_TASK, payment_id=payment_id)
    if ids:
        logger.warning("Settling stuck payments", extra={"count": len(ids)})
    return ids
