"""The Celery worker serves its own metrics (`CELERY_METRICS_PORT`): the sum of its pool processes.

A real `celery worker` (prefork, 2 processes) on this test's database and Redis broker, with a
`PROMETHEUS_MULTIPROC_DIR` of its own, processes N stored webhook events; its exporter shows N.
"""

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import purge_broker_queues
from tests.ops.test_metrics_multiprocess import database_url_of_this_test, free_port, wait_until
from webhooks.models import ReceivedVia, WebhookEvent, WebhookStatus
from webhooks.services import VerifiedEvent, webhook_event_store

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
N = 12
TYPE = "customer.created"  # a type the service does not handle: processing ignores it


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def worker_with_exporter(tmp_path) -> Iterator[int]:
    metrics_dir = tmp_path / "prometheus-worker"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"\0" * 8)  # an earlier run's file: emptied at start
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CELERY_METRICS_PORT": str(port),
        "CELERY_METRICS_ADDRESS": "127.0.0.1",
    }
    purge_broker_queues()
    args = [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-P", "prefork", "-c", "2", "-Q", "webhooks"]
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen([*args, "-l", "INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603

    def exporting() -> bool:
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        try:
            scrape(port)
        except OSError:
            return False
        return True

    try:
        wait_until(exporting, seconds=60, what="the worker's exporter")
        assert not (metrics_dir / "counter_999999.db").exists(), "the worker did not empty its directory"
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
        purge_broker_queues()


def test_the_worker_exporter_shows_the_sum_of_its_pool_processes(worker_with_exporter):
    port = worker_with_exporter
    for index in range(N):
        event = VerifiedEvent(
            stripe_id=f"evt_worker_metrics_{index}_{time.time_ns()}",
            type=TYPE,
            api_version="2024-06-20",
            livemode=False,
            created_at=None,
            body='{"data": {"object": {"id": "cus_1", "object": "customer"}}}',
        )
        webhook_event_store(event=event, via=ReceivedVia.WEBHOOK)  # commits, then enqueues its processing

    wait_until(
        lambda: WebhookEvent.objects.filter(type=TYPE, status=WebhookStatus.IGNORED).count() == N,
        seconds=60,
        what="the worker to process every event",
    )
    key = ("webhook_events_total", frozenset({"type": TYPE, "outcome": "ignored"}.items()))
    wait_until(lambda: scrape(port).get(key) == N, seconds=10, what="the exporter to show every run")
    for _ in range(3):
        assert scrape(port)[key] == N
