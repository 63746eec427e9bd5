"""Prometheus: `/metrics` that adds up every web process, the worker's own exporter, and the API error counter.

Multi-process mode (prometheus_client): when `PROMETHEUS_MULTIPROC_DIR` is set in a process's
environment before it starts, every counter and histogram is kept in memory-mapped files in that
directory, one file per process and kind. The gunicorn master empties the directory when it starts
(`on_starting` in config/gunicorn.conf.py) and marks each exited worker dead (`child_exit`), and
`/metrics` sums the files of all processes (`MultiProcessCollector`), so every gunicorn worker answers
a scrape with the same totals. Without the variable (tests, `runserver`) the process's own registry
is served.

The Celery worker has a directory of its own and its own port (`CELERY_METRICS_PORT`, an exporter
thread in the worker's main process that sums its pool processes' files), because web and worker
are separate containers that restart on their own: a shared directory would be emptied under a
running worker whenever gunicorn restarts. Prometheus scrapes both targets and sums them.

Gauges are never kept in those files: each one is computed from the database when `/metrics` is
scraped (the collectors in `SCRAPE_COLLECTORS`, a few indexed queries), so whichever process answers,
the value is the same and no `multiprocess_mode` has to be chosen. Each collector's success and
duration are exported as `metrics_collector_up{collector}` and `metrics_collector_duration_seconds{collector}`;
a collector that fails (the database is down) leaves its series out and the rest of the scrape stands.
"""

import logging
import os
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

API_ERRORS = Counter("payment_errors_total", "API error responses, by error code", ["code"])

# Gauges computed at scrape time, each in the room whose tables it reads (config imports no app).
SCRAPE_COLLECTORS = (
    "events.metrics.OutboxCollector",
    "disputes.deadlines.DueSoonCollector",
    "payments.metrics.StuckOperationsCollector",
    "reconciliation.metrics.DiscrepancyCollector",
    "risk.metrics.ReviewQueueCollector",
)


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def api_error_count(code: str) -> None:
    """Count one API error response by the code of its envelope (`{"error": {"code": ...}}`)."""
    API_ERRORS.labels(code=code or "unknown").inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def multiprocess_dir_clean(path: str) -> None:
    """Create the directory, or empty it of the files of processes from an earlier start."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for file in directory.glob("*.db"):
        file.unlink(missing_ok=True)


class _ScrapeCollectors:
    """Runs every scrape-time collector; one that fails is logged and left out, with its up and duration."""

    def __init__(self, collectors: dict[str, Collector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "metrics_collector_up", "1 when the scrape-time collector answered, 0 when it failed", labels=["collector"]
        )
        duration = GaugeMetricFamily(
            "metrics_collector_duration_seconds", "Time the scrape-time collector took", labels=["collector"]
        )
        for name, collector in self.collectors.items():
            started = time.perf_counter()
            try:
                metrics = list(collector.collect())
            except Exception:  # noqa: BLE001 - a scrape must still show every other series
                logger.warning("A metrics collector failed", extra={"collector": name}, exc_info=True)
                up.add_metric([name], 0)
            else:
                yield from metrics
                up.add_metric([name], 1)
            duration.add_metric([name], time.perf_counter() - started)
        yield up
        yield duration


class _ProcessRegistry:
    """This process's own registry (no multi-process directory)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@lru_cache(maxsize=1)
def scrape_collectors() -> _ScrapeCollectors:
    return _ScrapeCollectors({path.split(".")[0]: import_string(path)() for path in SCRAPE_COLLECTORS})


def scrape_registry(*, with_scrape_collectors: bool = True) -> CollectorRegistry:
    """What a scrape shows: every process's files (or this process's registry) and the scrape-time gauges."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ProcessRegistry())
    if with_scrape_collectors:
        registry.register(scrape_collectors())
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: Prometheus text, the same totals whichever web process answers."""
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


# --- the Celery worker's exporter ---------------------------------------------------------------------
WORKER_PORT_ENV = "CELERY_METRICS_PORT"


def worker_exporter_start(**_: Any) -> None:
    """In the worker's main process (`celeryd_init`): empty its directory, serve its processes' sum on its port."""
    port = os.environ.get(WORKER_PORT_ENV)
    if not port:
        return
    from prometheus_client import start_http_server

    path = multiprocess_dir()
    if path:
        multiprocess_dir_clean(path)
    else:
        logger.warning(
            "%s is set without %s: only the main process's metrics are served", WORKER_PORT_ENV, MULTIPROC_ENV
        )
    address = os.environ.get("CELERY_METRICS_ADDRESS", "0.0.0.0")  # noqa: S104 - scraped from outside the container
    start_http_server(int(port), addr=address, registry=scrape_registry(with_scrape_collectors=False))
    logger.info("Worker metrics exported", extra={"port": int(port), "multiprocess": bool(path)})


def worker_process_dead(**_: Any) -> None:
    """When a pool process exits (`worker_process_shutdown`): drop its live gauges from the sum."""
    path = multiprocess_dir()
    if path:
        mark_process_dead(os.getpid(), path)


def worker_signals_connect() -> None:
    from celery import signals

    signals.celeryd_init.connect(worker_exporter_start, weak=False)
    signals.worker_process_shutdown.connect(worker_process_dead, weak=False)
