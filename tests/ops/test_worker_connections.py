"""A worker keeps its database connection from task to task, as the web keeps one from request to request.

A real `celery worker` (prefork, one pool process, the `events` queue) on this test's database: each
event recorded here is published by a relay task in the worker. The PostgreSQL backend that served the
first task still serves the sixth (same pid, same start time), and it is the only one the worker holds.
Celery's Django fixup would close it after every task (a new backend per task) unless told otherwise.
"""

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, transaction

from events.models import Event
from events.services import event_record
from tests.conftest import purge_broker_queues
from tests.ops.test_metrics_multiprocess import database_url_of_this_test, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
TASKS = 6
NAME = "test-events-worker"  # the worker's application_name, to tell its backends from any other


def worker_backends() -> set[tuple[int, str]]:
    """(pid, start time) of the worker's backends on this test's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [NAME],
        )
        return set(cursor.fetchall())


@pytest.fixture
def events_worker(tmp_path) -> Iterator[None]:
    purge_broker_queues()
    env = {**os.environ, "DATABASE_URL": f"{database_url_of_this_test()}?application_name={NAME}"}
    args = [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-P", "prefork", "-c", "1", "-Q", "events"]
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen([*args, "-l", "INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()
        return "ready." in log_path.read_text()

    try:
        wait_until(ready, seconds=60, what="the worker")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
        purge_broker_queues()


def publish_one(shop, n: int) -> None:
    with transaction.atomic():  # the relay is sent when this commits
        event = event_record(
            type="payment.initiated", client_id=shop.pk, subject_type="payment", subject_id=f"pay_conn{n}", data={}
        )
    wait_until(
        lambda: Event.objects.filter(pk=event.pk, published_at__isnull=False).exists(),
        seconds=30,
        what=f"the relay to publish event {n}",
    )


def test_the_worker_keeps_its_database_connection_across_tasks(events_worker, django_user_model):
    shop = django_user_model.objects.create(username="conn-shop", api_role="storefront")

    publish_one(shop, 0)
    first = worker_backends()
    assert len(first) == 1, f"the worker should hold one connection after its first task, not {first}"

    for n in range(1, TASKS):
        publish_one(shop, n)

    assert worker_backends() == first, "a later task opened a new connection instead of reusing the first"
