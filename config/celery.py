"""The Celery application: JSON only, late acks, queues per kind of work, routes, time limits.

Queues: `gateway` (calls to the payment gateway: settle payments, submit refunds), `webhooks`
(processing stored Stripe events), `events` (the outbox relay), `default` (everything else,
housekeeping). Settings come from Django's (`CELERY_*`); the beat schedule is `CELERY_BEAT_SCHEDULE`.

Tracing (config/tracing.py, only with `OTEL_EXPORTER_OTLP_ENDPOINT` set) starts in each pool process
(`worker_process_init`: the prefork children and the solo pool; the thread and green pools are not
traced) and in beat, and flushes its last spans when a pool process exits. Workers and beat log through
Django's LOGGING (config/logging.py), as the web does, instead of Celery's own format.
"""

import os
from typing import Any

from celery import Celery, signals
from kombu import Queue

from config.metrics import worker_signals_connect
from config.tracing import configure_tracing, shutdown_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = ("default", "gateway", "webhooks", "events")

# Every task is a config.tasks.Task: a lost database connection is retried with backoff, on a new connection.
app = Celery("payment_service", task_cls="config.tasks:Task")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_default_queue = "default"
app.conf.task_routes = {
    "payments.tasks.settle_payment": {"queue": "gateway"},
    "refunds.tasks.submit_refund": {"queue": "gateway"},
    "events.tasks.relay_outbox": {"queue": "events"},
    "payments.tasks.sweep_stuck_payments": {"queue": "default"},
    "refunds.tasks.sweep_stuck_refunds": {"queue": "default"},
    "webhooks.tasks.*": {"queue": "webhooks"},
}
app.autodiscover_tasks()
app.steps["consumer"].add("payments.consumers:OrderPlacedConsumer")  # order.placed messages (docs/order-placed.md)
worker_signals_connect()  # CELERY_METRICS_PORT: the worker's own /metrics exporter (config/metrics.py)


@signals.setup_logging.connect(weak=False)
def _keep_django_logging(**_kwargs: Any) -> None:
    """Log as the web does: Django's LOGGING (JSON lines, masked, trace ids, LOG_LEVEL), not Celery's format."""


@signals.worker_process_init.connect(weak=False)
@signals.beat_init.connect(weak=False)
def _start_tracing(**_kwargs: Any) -> None:
    configure_tracing()  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set


@signals.worker_process_shutdown.connect(weak=False)
def _flush_tracing(**_kwargs: Any) -> None:
    shutdown_tracing()  # a pool child leaves with os._exit: atexit would not flush its spans
