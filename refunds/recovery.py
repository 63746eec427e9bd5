"""Recovery of refunds left pending (a lost answer, a worker gone): submit again with the same key."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from refunds.models import Refund
from refunds.states import RefundStatus

logger = logging.getLogger(__name__)


def refunds_stuck(*, older_than: timedelta | None = None) -> QuerySet[Refund]:
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.REFUNDS_STUCK_AFTER_SECONDS))
    return Refund.objects.filter(status=RefundStatus.PENDING, needs_attention=False, updated_at__lt=cutoff)


def refunds_sweep_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Enqueue a submission (key `re_X:create`, so never a second refund) for every stuck refund."""
    from refunds.tasks import submit_refund

    ids = list(refunds_stuck(older_than=older_than).values_list("pk", flat=True)[:1000])
    for refund_id in ids:
        submit_refund.delay(refund_id=refund_id)
    if ids:
        logger.warning("Resubmitting stuck refunds", extra={"count": len(ids)})
    return ids
