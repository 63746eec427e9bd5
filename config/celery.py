"""The Celery application: JSON only, late acks, queues per kind of work, routes, time limits.

Queues: `gateway` (calls to the payment gateway: settle payments, submit refunds), `webhooks`
(processing stored Stripe events), `events` (the outbox relay), `default` (everything else,
housekeeping). Settings come from Django's (`CELERY_*`); the beat schedule is `CELERY_BEAT_SCHEDULE`.

Tracing (config/tracing.py, only with `OTEL_EXPORTER_OTLP_ENDPOINT` set) starts in each pool process
(`worker_process_init`: the prefork children and the solo pool; the thread and green pools are not
traced) and in beat, and flushes its last spans when a pool process exits. Workers and beat log through
Django's LOGGING (config/logging.py), as the web does, instead of Celery's own format.

Database connections persist across tasks as they do across requests: before and after each task the
worker closes only a connection that is broken or older than `CONN_MAX_AGE` (Django's
`close_old_connections`, what a request does). Celery's own fixup would close them around every task
(`CELERY_DB_REUSE_MAX` turns that off), so each task paid a new PostgreSQL backend.
"""

import os
from typing import Any

from celery import Celery, signals
from django.db import close_old_connections
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
    "refunds.tasks.submit_new_refunds": {"queue": "gateway"},
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


@signals.task_prerun.connect(weak=False)
@signals.task_postrun.connect(weak=False)
def _recycle_database_connections(task: Any = None, **_kwargs: Any) -> None:
    """Close this thread's connections that are broken or past CONN_MAX_AGE; keep the rest for the next task.

    Not for a task run inline (eager): it runs inside the caller's transaction and connection.
    """
    if task is not None and not task.request.is_eager:
        close_old_connections()


@signals.worker_process_init.connect(weak=False)
@signals.beat_init.connect(weak=False)
def _start_tracing(**_kwargs: Any) -> None:
    configure_tracing()  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set


@signals.worker_process_shutdown.connect(weak=False)
def _flush_tracing(**_kwargs: Any) -> None:
    shutdown_tracing()  # a pool child leaves with os._exit: atexit would not flush its spans
