"""Prometheus gauge of reconciliation, computed when /metrics is scraped."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from reconciliation.models import Discrepancy, DiscrepancyState


class DiscrepancyCollector:
    """`reconciliation_open_discrepancies`: differences with the gateway nobody has fixed, resolved or accepted."""

    def collect(self) -> Iterator[Metric]:
        count = Discrepancy.objects.filter(state=DiscrepancyState.OPEN).count()  # discrepancy_state_kind_idx
        yield GaugeMetricFamily(
            "reconciliation_open_discrepancies",
            "Open reconciliation discrepancies (not fixed, resolved or accepted)",
            count,
        )
