"""Prometheus metrics of payments: status changes, idempotency keys, and stuck gateway operations (scrape time)."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.idempotency import HEADER, REPLAYED_HEADER, IdempotencyKeyInUse, IdempotencyKeyReused
from payments.models import Payment

Runner = TypeVar("Runner", bound=Callable[..., Response])

TRANSACTIONS = Counter(
    "payment_transactions_total",
    "Payment status changes (and the status a payment starts in), by new status, currency and gateway",
    ["status", "currency", "gateway"],
)
IDEMPOTENCY_REQUESTS = Counter(
    "idempotency_requests_total",
    "Requests with an Idempotency-Key: new (did the work), replayed (stored response sent), conflict (refused)",
    ["outcome"],
)


def payment_transaction_count(payment: Payment) -> None:
    """Count the payment's new status once its transaction commits (a rolled-back change never happened)."""
    labels = {"status": payment.status, "currency": payment.currency, "gateway": payment.gateway}
    transaction.on_commit(lambda: TRANSACTIONS.labels(**labels).inc())


def idempotency_counted(runner: Runner) -> Runner:
    """Count each request with a key once, by what its runner made of it (decorates `run_idempotent*`).

    `conflict`: refused because the key belongs to another request (422) or is in use (409);
    `replayed`: the stored response was sent again; `new`: the request did its work.
    """

    @wraps(runner)
    def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        if not request.headers.get(HEADER):
            return runner(request, *args, **kwargs)
        try:
            response = runner(request, *args, **kwargs)
        except (IdempotencyKeyReused, IdempotencyKeyInUse):
            IDEMPOTENCY_REQUESTS.labels(outcome="conflict").inc()
            raise
        replayed = response.headers.get(REPLAYED_HEADER) == "true"
        IDEMPOTENCY_REQUESTS.labels(outcome="replayed" if replayed else "new").inc()
        return response

    return run  # type: ignore[return-value]


class StuckOperationsCollector:
    """`payments_stuck_operations`: payments whose recorded gateway operation is older than the sweep's threshold.

    Also those left for staff (`needs_attention`): they are stuck until a person acts. One count on
    the partial index `payment_pending_op_idx`.
    """

    def collect(self) -> Iterator[Metric]:
        cutoff = timezone.now() - timedelta(seconds=settings.PAYMENTS_STUCK_AFTER_SECONDS)
        count = Payment.objects.filter(~Q(pending_operation=""), pending_operation_at__lt=cutoff).count()
        yield GaugeMetricFamily(
            "payments_stuck_operations",
            f"Payments with a gateway operation pending for more than PAYMENTS_STUCK_AFTER_SECONDS "
            f"({settings.PAYMENTS_STUCK_AFTER_SECONDS} s)",
            value=count,
        )
