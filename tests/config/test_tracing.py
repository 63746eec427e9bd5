"""OpenTelemetry tracing: one trace from an API request through the Celery task it enqueued; off without an endpoint.

The first test runs the request through Django's test client and the task in a real Celery worker
(in this process, on the real Redis broker), with the SDK's in-memory exporter. The others run the
service's own entry points in separate processes: `config.wsgi` with and without
`OTEL_EXPORTER_OTLP_ENDPOINT`, and gunicorn plus a `celery worker` exporting over OTLP/HTTP to a
small collector that this test module runs.
"""

import gzip
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connections
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiRole
from config.logging import JsonFormatter, RequestIdFilter, SensitiveDataFilter
from config.tracing import configure_tracing, shutdown_tracing
from tests.accounts.factories import UserFactory
from tests.gateways.conftest import API_KEY, free_port, localstripe, localstripe_url  # noqa: F401 - localstripe fixtures
from tests.helpers import wait_for

RELAY = "events.tasks.relay_outbox"


class Spans:
    """The spans this process has finished, as the in-memory exporter received them."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    def finished(self) -> list[ReadableSpan]:
        self.provider.force_flush()
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Tracing on in this process (as with an endpoint set), exporting to memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = configure_tracing(exporter=exporter)
    assert provider is not None
    connections.close_all()  # the next connection is opened through the psycopg instrumentation
    yield Spans(provider, exporter)
    shutdown_tracing()
    connections.close_all()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line of this process, as the service's stdout handler writes it (JSON, same filters)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SensitiveDataFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _children(all_spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in all_spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def stripe_gateway(settings, localstripe):  # noqa: F811 - the fixture imported above
    settings.PAYMENTS_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    settings.OUTBOX_RELAY_DELAY_MS = 0  # the relay is sent at commit, without a countdown
    return localstripe


@pytest.mark.django_db(transaction=True)
def test_one_trace_runs_from_the_api_request_through_the_celery_task_it_enqueued(
    stripe_gateway, spans, worker, storefront, json_log
):
    # when: a storefront creates and confirms a payment (the Stripe SDK is called; the commit enqueues the relay)
    response = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_t", "payment_method": "pm_card_visa", "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="trace-1",
    )
    assert response.status_code == 201, response.content

    # then: each relay the request enqueued (one per commit that wrote events) ran in the worker, in the request's trace
    def relays_ran() -> list[ReadableSpan] | None:
        finished = spans.finished()
        published = [s for s in finished if s.name == f"apply_async/{RELAY}"]
        runs = [s for s in finished if s.name == f"run/{RELAY}"]
        return finished if published and len(runs) == len(published) else None

    finished = wait_for(relays_ran)
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert server.name == "POST api/v1/payments/$"
    assert server.attributes["http.status_code"] == 201
    trace_id = server.context.trace_id
    published = {s.context.span_id: s for s in finished if s.name == f"apply_async/{RELAY}"}
    runs = [s for s in finished if s.name == f"run/{RELAY}"]
    assert {s.kind for s in published.values()} == {SpanKind.PRODUCER}
    assert {s.parent.span_id for s in published.values()} == {server.context.span_id}
    assert {s.kind for s in runs} == {SpanKind.CONSUMER}
    assert sorted(s.parent.span_id for s in runs) == sorted(published)  # each run under the message that sent it
    assert {s.context.trace_id for s in [server, *published.values(), *runs]} == {trace_id}

    # and: the request's SQL, the Stripe calls and the task's SQL are spans of that trace, under their parents
    request_sql = [s for s in _children(finished, server) if s.attributes.get("db.system") == "postgresql"]
    assert any(s.name == "INSERT" and "payments_payment" in s.attributes["db.statement"] for s in request_sql)
    stripe_calls = [s for s in _children(finished, server) if s.kind is SpanKind.CLIENT and "http.url" in s.attributes]
    assert stripe_calls, "no span for the Stripe SDK's HTTP calls"
    assert all(s.attributes["http.url"].startswith(stripe_gateway.url + "/v1/") for s in stripe_calls)
    assert "POST" in {s.attributes["http.method"] for s in stripe_calls}
    task_sql = [s for run in runs for s in _children(finished, run) if s.attributes.get("db.system") == "postgresql"]
    assert any("payments_event" in s.attributes["db.statement"] for s in task_sql)  # the outbox
    assert {s.context.trace_id for s in request_sql + stripe_calls + task_sql} == {trace_id}

    # and: a log line written inside the request, and one inside the task, name the trace and their span
    lines = _lines(json_log)
    created = next(line for line in lines if line["message"] == "Payment created")
    assert created["trace_id"] == format(trace_id, "032x")
    assert created["span_id"] == format(server.context.span_id, "016x")
    relayed = wait_for(
        lambda: [line for line in _lines(json_log) if line["message"] == "Outbox relay published events"]
    )
    assert {line["trace_id"] for line in relayed} == {format(trace_id, "032x")}
    assert {line["span_id"] for line in relayed} <= {format(run.context.span_id, "016x") for run in runs}


@pytest.mark.django_db
def test_a_response_logged_after_the_request_span_ended_still_names_its_trace(spans, anon, json_log):
    # when: an anonymous call is refused (django.request logs the 401 after the middleware chain has returned)
    response = anon.get("/api/v1/payments/")

    # then: that line carries the request span's ids
    assert response.status_code == 401
    (server,) = [s for s in spans.finished() if s.kind is SpanKind.SERVER]
    (refused,) = [line for line in _lines(json_log) if line["logger"] == "django.request"]
    assert refused["message"] == "Unauthorized: /api/v1/payments/"
    assert refused["trace_id"] == format(server.context.trace_id, "032x")
    assert refused["span_id"] == format(server.context.span_id, "016x")


@pytest.mark.django_db
def test_health_probes_are_not_traced(spans, anon):
    assert anon.get("/health/live").status_code == 200
    assert anon.get("/api/v1/payments/").status_code == 401

    assert [s.name for s in spans.finished() if s.kind is SpanKind.SERVER] == ["GET api/v1/payments/$"]


def test_trace_ids_are_never_masked_as_card_numbers(json_log):
    from opentelemetry import trace

    # a trace id whose 16 leading digits pass the Luhn check, as about one in 500 random ones does
    trace_id = int("4242424242424242" + "abcdef0123456789", 16)
    context = trace.SpanContext(trace_id=trace_id, span_id=0x4242424242424242, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        logging.getLogger("tests.tracing").warning("inside a span")

    (line,) = [line for line in _lines(json_log) if line["logger"] == "tests.tracing"]
    assert line["trace_id"] == "4242424242424242abcdef0123456789"
    assert line["span_id"] == "4242424242424242"


# --- The service's own entry points, in processes of their own, exporting over OTLP/HTTP -----------------

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in trace_pb2.Span.SpanKind.items()}


@dataclass
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    attributes: dict[str, Any]


class Collector:
    """An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf), keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                collector.add(request if self.path == "/v1/traces" else None)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: Any) -> None:
        if request is None:
            return
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                service=resource["service.name"],
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                name=span.name,
                                kind=KINDS[span.kind],
                                attributes={a.key: _value(a.value) for a in span.attributes},
                            )
                        )

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _service_env(**extra: str) -> dict[str, str]:
    """This environment without any OTEL_* setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


# What a gunicorn worker and a Celery pool process do at start, then one refused API call, and what is in place.
PROBE = """
import json, sys
import config.wsgi
import config.celery
from celery import signals
from django.conf import settings
from django.test import Client
from opentelemetry import trace

signals.worker_process_init.send(sender="probe")
status = Client().get("/api/v1/payments/").status_code
print("PROBE " + json.dumps({
    "status": status,
    "provider": type(trace.get_tracer_provider()).__name__,
    "sdk_loaded": "opentelemetry.sdk" in sys.modules,
    "instrumentations": sorted(name for name in sys.modules if name.startswith("opentelemetry.instrumentation.")),
    "middleware": [name for name in settings.MIDDLEWARE if "opentelemetry" in name],
    "publish_hooks": [repr(r) for _, r in signals.before_task_publish.receivers if "opentelemetry" in repr(r)],
}), flush=True)
"""


def _run_probe(env: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    done = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    (report,) = [json.loads(line.removeprefix("PROBE ")) for line in out if line.startswith("PROBE ")]
    return report, [json.loads(line) for line in out if line.startswith("{")]


def test_without_an_endpoint_nothing_is_instrumented_and_log_lines_have_no_trace_fields():
    report, log = _run_probe(_service_env())

    assert report["status"] == 401
    assert report["provider"] == "ProxyTracerProvider"  # the API's placeholder: no TracerProvider installed
    assert report["sdk_loaded"] is False
    assert report["instrumentations"] == []
    assert report["middleware"] == []
    assert report["publish_hooks"] == []
    (refused,) = [line for line in log if line["logger"] == "django.request"]
    assert refused["message"] == "Unauthorized: /api/v1/payments/"
    assert "trace_id" not in refused
    assert not any("trace_id" in line or "span_id" in line for line in log)
    assert not any(line["logger"] == "config.tracing" for line in log)


def test_with_an_endpoint_the_wsgi_application_exports_its_spans_and_logs_their_ids(collector):
    report, log = _run_probe(_service_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_SERVICE_NAME="probe-svc"))

    assert report["status"] == 401
    assert report["provider"] == "TracerProvider"
    assert report["middleware"] == ["opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"]
    assert len(report["publish_hooks"]) == 1
    # the batch was flushed when the process exited
    (server,) = [s for s in collector.received() if s.kind == "SERVER"]
    assert (server.service, server.name) == ("probe-svc", "GET api/v1/payments/$")
    (refused,) = [line for line in log if line["logger"] == "django.request"]
    assert (refused["trace_id"], refused["span_id"]) == (server.trace_id, server.span_id)
    assert [line["message"] for line in log if line["logger"] == "config.tracing"] == [
        "Tracing on: spans of probe-svc go to OTLP"
    ]


class Service:
    """A process of the service (gunicorn, a Celery worker) with its output in a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603

    def output(self) -> str:
        return self.log.read_text()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def alive(self) -> None:
        assert self.process.poll() is None, self.output()[-3000:]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _answering(url: str, service: Service) -> bool:
    service.alive()
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or still loading the application
        return False


@pytest.mark.django_db(transaction=True)
def test_gunicorn_and_a_celery_worker_send_one_trace_from_the_request_to_the_task(collector, tmp_path):
    # given: gunicorn (the image's configuration, 2 workers) and a worker, exporting to an OTLP collector
    from tests.conftest import purge_broker_queues

    purge_broker_queues()
    token = RefreshToken.for_user(UserFactory(api_role=ApiRole.STOREFRONT)).access_token
    common = {"DATABASE_URL": _test_database_url(), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    common["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # export every 100 ms, not every 5 s
    port = free_port()
    web_env = _service_env(**common, HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2", GUNICORN_THREADS="2")
    web = Service([str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py"], web_env, tmp_path / "web.log")
    worker_command = [str(BIN / "celery"), "-A", "config", "worker", "-Q", "default,gateway,webhooks,events", "-c", "1"]
    worker = Service(
        worker_command, _service_env(**common, OTEL_SERVICE_NAME="payment-worker"), tmp_path / "worker.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answering(f"{base}/health/live", web), timeout=60)
        wait_for(lambda: (worker.alive(), "celery@" in worker.output() and " ready." in worker.output())[1], timeout=60)

        # when: a storefront creates and confirms a payment over HTTP
        response = requests.post(
            f"{base}/api/v1/payments/",
            json={"amount": 2000, "currency": "usd", "customer_id": "cus_t", "payment_method": "pm_card_visa"}
            | {"confirm": True},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "trace-e2e"},
            timeout=30,
        )
        assert response.status_code == 201, response.text

        # then: the worker process's run of the relay it enqueued arrives, in the request's trace
        def relays_ran() -> list[ReceivedSpan] | None:
            received = collector.received()
            published = [s for s in received if s.name == f"apply_async/{RELAY}"]
            runs = [s for s in received if s.name == f"run/{RELAY}"]
            server = [s for s in received if s.kind == "SERVER"]  # batches from two processes arrive in any order
            return received if server and published and len(runs) >= len(published) else None

        received = wait_for(relays_ran, timeout=30)
        (server,) = [s for s in received if s.kind == "SERVER"]  # the health probes are not traced
        assert (server.service, server.name) == ("payment-service", "POST api/v1/payments/$")
        published = {s.span_id: s for s in received if s.name == f"apply_async/{RELAY}"}
        runs = [s for s in received if s.name == f"run/{RELAY}"]
        assert {(s.service, s.kind, s.parent_span_id) for s in published.values()} == {
            ("payment-service", "PRODUCER", server.span_id)
        }
        assert {(s.service, s.kind) for s in runs} == {("payment-worker", "CONSUMER")}
        assert {s.parent_span_id for s in runs} == set(published)
        task_sql = [
            s for s in received if s.parent_span_id in {r.span_id for r in runs} and "db.statement" in s.attributes
        ]
        request_sql = [s for s in received if s.parent_span_id == server.span_id and "db.statement" in s.attributes]
        assert task_sql
        assert request_sql
        assert {s.trace_id for s in [server, *published.values(), *runs, *task_sql, *request_sql]} == {server.trace_id}

        # and: the web's and the worker's JSON log lines name that trace and their span
        created = next(line for line in web.json_lines() if line["message"] == "Payment created")
        assert (created["trace_id"], created["span_id"]) == (server.trace_id, server.span_id)
        relayed = wait_for(
            lambda: [ln for ln in worker.json_lines() if ln["message"] == "Outbox relay published events"]
        )
        assert {line["trace_id"] for line in relayed} == {server.trace_id}
        assert {line["span_id"] for line in relayed} <= {run.span_id for run in runs}
    finally:
        web.stop()
        worker.stop()
