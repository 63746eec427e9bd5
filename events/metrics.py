"""Prometheus gauges of the outbox, computed when /metrics is scraped: lag and dead letters."""

from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from events.models import Event


class OutboxCollector:
    """`outbox_lag_seconds` (age of the oldest event still to publish, 0 when none) and `outbox_dead_letters`.

    One query over the unpublished events only (the partial index `event_unpublished_idx`), so its cost
    follows the backlog, not the table.
    """

    def collect(self) -> Iterator[Metric]:
        limit = settings.OUTBOX_MAX_PUBLISH_ATTEMPTS
        row = Event.objects.filter(published_at__isnull=True).aggregate(
            oldest=Min("created_at", filter=Q(publish_attempts__lt=limit)),
            dead=Count("sequence", filter=Q(publish_attempts__gte=limit)),
        )
        oldest = row["oldest"]
        lag = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
        yield GaugeMetricFamily(
            "outbox_lag_seconds", "Age of the oldest unpublished event that is not dead-lettered (0 when none)", lag
        )
        yield GaugeMetricFamily(
            "outbox_dead_letters",
            "Unpublished events whose publish attempts ran out (OUTBOX_MAX_PUBLISH_ATTEMPTS)",
            row["dead"],
        )
