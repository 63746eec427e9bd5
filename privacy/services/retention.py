"""Retention of raw webhook payloads: older than `WEBHOOK_PAYLOAD_RETENTION_DAYS`, a payload is reduced to its
ids and outcome (`redacted_webhook_body`); and payloads that arrive after a customer's erasure about its objects
(Stripe's `customer.deleted` among them) are redacted as the erasure's were.

The bodies may be encrypted at rest, so they are never searched in SQL: rows are picked by time and id, and the
bodies read and written through the ORM, in batches, each in its own short transaction. Both passes are
idempotent (a redacted body redacts to itself and is not written again).
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from privacy.models import CustomerErasure, RetentionCursor
from privacy.redaction import is_redacted, redacted_webhook_body
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)
BATCH_SIZE = 500
CURSOR = "webhook_payloads"
LATE_WEBHOOK_DAYS = 7  # Stripe retries a delivery for up to three days; recovery lists a month back, within reach
CLOCK_SKEW = timedelta(days=1)


def webhook_events_mentioning(*, references: Iterable[str], since: datetime) -> list[int]:
    """The ids of webhook events received since `since` whose payload names one of `references` (read only)."""
    wanted = [reference for reference in references if reference]
    if not wanted:
        return []
    found: list[int] = []
    rows = WebhookEvent.objects.filter(received_at__gte=since - CLOCK_SKEW).order_by("pk").only("pk", "body")
    for event in rows.iterator(chunk_size=BATCH_SIZE):
        if not is_redacted(event.body) and any(reference in event.body for reference in wanted):
            found.append(event.pk)
    return found


def _redact(pks: list[int]) -> int:
    """Redact these rows' bodies (locked, one short transaction); how many changed."""
    changed = 0
    with transaction.atomic():
        rows = WebhookEvent.objects.select_for_update(of=("self",)).filter(pk__in=pks).order_by("pk")
        for event in rows.only("pk", "body"):
            body = redacted_webhook_body(event.body)
            if body != event.body:
                event.body = body
                event.save(update_fields=["body"])
                changed += 1
    return changed


def webhook_payloads_purge(*, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Reduce every webhook payload received before the retention window to its ids and outcome; how many changed.

    Goes in (received_at, id) order from where the last run stopped (`RetentionCursor`), a batch per transaction.
    The row's own columns (type, status, ignored reason, times, payment and refund) are kept.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_PAYLOAD_RETENTION_DAYS)
    cursor = RetentionCursor.objects.filter(name=CURSOR).first()
    purged = 0
    while True:
        rows = WebhookEvent.objects.filter(received_at__lt=cutoff)
        if cursor is not None:
            rows = rows.filter(received_at__gte=cursor.received_at).exclude(
                received_at=cursor.received_at, pk__lte=cursor.last_id
            )
        batch = list(rows.order_by("received_at", "pk").values_list("pk", "received_at")[:batch_size])
        if not batch:
            break
        purged += _redact([pk for pk, _ in batch])
        last_pk, last_received = batch[-1]
        cursor, _ = RetentionCursor.objects.update_or_create(
            name=CURSOR, defaults={"received_at": last_received, "last_id": last_pk}
        )
    logger.info("Webhook payloads purged", extra={"purged": purged, "before": cutoff.isoformat()})
    return purged


def webhooks_of_erased_customers_redact(*, now: datetime | None = None) -> int:
    """Redact the payloads received since a recent erasure that name the erased customer's objects."""
    recent = CustomerErasure.objects.filter(erased_at__gte=(now or timezone.now()) - timedelta(days=LATE_WEBHOOK_DAYS))
    changed = 0
    for erasure in recent.order_by("erased_at"):
        pks = webhook_events_mentioning(references=erasure.references, since=erasure.erased_at)
        for start in range(0, len(pks), BATCH_SIZE):
            changed += _redact(pks[start : start + BATCH_SIZE])
    return changed
