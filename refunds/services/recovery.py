"""Recovery of refunds left pending (a lost answer, a worker gone): submit again with the same key."""

import logging
from datetime import timedelta

from config.tasks import enqueue
from refunds.selectors import refunds_stuck
from refunds.services.submit import SUBMIT_TASK

logger = logging.getLogger(__name__)


def refunds_sweep_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Enqueue a submission (key `re_X:create`, so never a second refund) for every stuck refund."""
    ids = list(refunds_stuck(older_than=older_than).values_list("pk", flat=True)[:1000])
    for refund_id in ids:
        enqueue(SUBMIT_TASK, refund_id=refund_id)
    if ids:
        logger.warning("Resubmitting stuck refunds", extra={"count": len(ids)})
    return ids
