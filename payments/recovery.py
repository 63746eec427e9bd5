"""Recovery of payments whose gateway operation never settled (a crash, a lost answer, a worker gone)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from payments.models import Payment
from payments.states import PaymentStatus

logger = logging.getLogger(__name__)


def payments_stuck(*, older_than: timedelta | None = None) -> QuerySet[Payment]:
    """Payments with a recorded gateway operation, or `processing`, untouched for longer than the threshold."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.PAYMENTS_STUCK_AFTER_SECONDS))
    recorded = ~Q(pending_operation="") & Q(pending_operation_at__lt=cutoff)
    processing = Q(status=PaymentStatus.PROCESSING, pending_operation="", updated_at__lt=cutoff)
    return Payment.objects.filter(recorded | processing, needs_attention=False)


def payments_sweep_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Enqueue a settle (same gateway keys) for every stuck payment; returns their ids."""
    from payments.tasks import settle_payment

    ids = list(payments_stuck(older_than=older_than).values_list("pk", flat=True)[:1000])
    for payment_id in ids:
        settle_payment.delay(payment_id=payment_id)
    if ids:
        logger.warning("Settling stuck payments", extra={"count": len(ids)})
    return ids


def payment_is_stuck(payment: Payment) -> bool:
    """Whether a payment has a gateway operation left to finish (or was flagged for staff)."""
    return bool(payment.pending_operation or payment.needs_attention or payment.status == PaymentStatus.PROCESSING)
