"""OpenTelemetry tracing: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.

`configure_tracing()` is called once per process that serves or runs work: `config/wsgi.py` and
`config/asgi.py` (each gunicorn worker imports the application after the fork, so each one has its
own exporter thread), and from `config/celery.py` in every worker pool process (`worker_process_init`,
sent by the prefork and solo pools) and in beat (`beat_init`). It installs a TracerProvider
(resource `service.name` = `OTEL_SERVICE_NAME`, default "payment-service") that batches spans to
the OTLP/HTTP exporter, and instruments:

- Django (one server span per request; `/health/` and `/metrics` are not traced unless
  `OTEL_PYTHON_DJANGO_EXCLUDED_URLS` says otherwise),
- psycopg (one span per SQL statement),
- requests (every outgoing HTTP call, which includes the Stripe SDK: the adapter gives it
  `stripe.RequestsClient`),
- Celery (`apply_async/<task>` spans put the trace context into the task message headers; the worker's
  `run/<task>` span continues the same trace).

The exporter reads the standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
`..._COMPRESSION`, `OTEL_BSP_*` for the batching). JSON log lines carry the current span's
`trace_id` and `span_id` (config/logging.py).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when tracing is turned on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "payment-service"
# Probes and scrapes come every few seconds and would drown the traces that matter.
DEFAULT_EXCLUDED_URLS = "health/,metrics"
# Set on the Django request by the request hook, so that a log line about the request written after
# its span has ended (django.request logs 4xx/5xx responses last) still names the request's trace.
REQUEST_SPAN_CONTEXT_ATTR = "otel_span_context"

_lock = threading.Lock()
_provider: TracerProvider | None = None


def tracing_requested() -> bool:
    """Whether the environment (or `.env`, once the settings are loaded) asks for traces: an OTLP endpoint is set."""
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Turn tracing on for this process; return its TracerProvider, or None when tracing is off.

    Without `exporter`, spans go to the OTLP/HTTP endpoint of the environment, and nothing at all is
    done (no provider, no instrumentation) when no endpoint is set. Tests pass an exporter (the SDK's
    in-memory one). Calling it again returns the provider already in place.
    """
    global _provider  # noqa: PLW0603 - one provider per process
    from django.conf import settings

    settings.DEBUG  # noqa: B018 - loads config/settings.py, which reads `.env` into the environment first
    if exporter is None and not tracing_requested():
        return None
    with _lock:
        if _provider is not None:
            return _provider
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
        service_name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        # Global for any code that asks `trace.get_tracer()` (it can be set once per process); the
        # instrumentations get the provider explicitly, so they use this one even after a restart (tests).
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
        DjangoInstrumentor().instrument(
            tracer_provider=provider, excluded_urls=excluded, request_hook=_remember_span_context
        )
        PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
        RequestsInstrumentor().instrument(tracer_provider=provider)
        CeleryInstrumentor().instrument(tracer_provider=provider)
        _provider = provider
        logger.info("Tracing on: spans of %s go to OTLP", service_name)
        return provider


def shutdown_tracing() -> None:
    """Export the spans still buffered, then undo `configure_tracing` (a pool process about to exit, tests)."""
    global _provider  # noqa: PLW0603 - one provider per process
    with _lock:
        if _provider is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        for instrumentor in (DjangoInstrumentor(), PsycopgInstrumentor(), RequestsInstrumentor(), CeleryInstrumentor()):
            instrumentor.uninstrument()
        _provider.shutdown()  # flushes the batch processor first
        _provider = None


def _remember_span_context(span: Any, request: Any) -> None:
    setattr(request, REQUEST_SPAN_CONTEXT_ATTR, span.get_span_context())
