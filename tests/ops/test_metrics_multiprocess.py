"""/metrics adds up every gunicorn worker: 2 workers, N requests, every scrape shows N whichever worker answers.

gunicorn runs as deployed (`-c config/gunicorn.conf.py`) on this test's database and Redis, with a
`PROMETHEUS_MULTIPROC_DIR` of its own. Its access log names the worker (pid) that answered each
request, so the test knows both workers served requests and both answered scrapes.
"""

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiRole
from tests.accounts.factories import UserFactory
from tests.conftest import purge_broker_queues
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
BATCH = 20
START_SECONDS = 30
CREATED = {"status": "requires_payment_method", "currency": "usd", "gateway": "simulator"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_this_test() -> str:
    """DATABASE_URL of the database this test runs on (pytest-django's test database)."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path="/" + settings.DATABASES["default"]["NAME"]))


class Gunicorn:
    def __init__(self, process: subprocess.Popen, base: str, access_log: Path) -> None:
        self.process, self.base, self.access_log = process, base, access_log

    def request(self, method: str, path: str, *, token: str = "", body: dict | None = None, key: str = "") -> int:
        """One request on a new connection (so any worker may take it); returns the status."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback server
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as response:  # noqa: S310
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def pids_that_answered(self, method: str, path_prefix: str) -> set[str]:
        pids = set()
        for line in self.access_log.read_text().splitlines():
            pid, _, rest = line.partition(" ")
            if rest.startswith(f"{method} {path_prefix}"):
                pids.add(pid)
        return pids

    def worker_pids(self) -> set[int]:
        master = self.process.pid
        return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


def wait_until(condition, *, seconds: float, what: str) -> None:
    try:
        wait_for(condition, timeout=seconds, interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"timed out waiting for {what}") from exc


def stale_file_from_an_earlier_run(directory: Path) -> None:
    """A counter file as a worker of an earlier start left it: 1000 payments that must not be added to this run."""
    data = MmapedDict(str(directory / "counter_999999.db"))
    key = mmap_key("payment_transactions", "payment_transactions_total", list(CREATED), list(CREATED.values()), "")
    data.write_value(key, 1000.0, 0.0)
    data.close()


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[Gunicorn]:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    stale_file_from_an_earlier_run(metrics_dir)
    port, access_log = free_port(), tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "GUNICORN_ACCESS_LOG": str(access_log),
        "PAYMENTS_GATEWAY": "simulator",
    }
    args = [str(ROOT / ".venv/bin/gunicorn"), "-c", "config/gunicorn.conf.py", "--access-logformat", "%(p)s %(r)s"]
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    server = Gunicorn(process, f"http://127.0.0.1:{port}", access_log)
    try:

        def live() -> bool:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                return server.request("GET", "/health/live") == 200 and len(server.worker_pids()) == 2
            except OSError:
                return False

        wait_until(live, seconds=START_SECONDS, what="gunicorn to start")
        assert not (metrics_dir / "counter_999999.db").exists(), "on_starting did not empty the directory"
        yield server
    finally:
        process.send_signal(signal.SIGINT)  # quick shutdown: no wait for idle keep-alive connections
        process.wait(timeout=30)
        log.close()
        purge_broker_queues()  # the creates enqueued outbox relays: not the next test's


def test_every_scrape_shows_the_sum_of_both_workers(gunicorn):
    token = str(RefreshToken.for_user(UserFactory(api_role=ApiRole.STOREFRONT)).access_token)
    sent = 0

    def create(index: int) -> int:
        body = {"amount": 1000 + index, "currency": "usd", "customer_id": f"cus_mp_{index}"}
        return gunicorn.request("POST", "/api/v1/payments/", token=token, body=body, key=f"mp-{index}")

    def missing(index: int) -> int:
        return gunicorn.request("GET", f"/api/v1/payments/pay_missing{index}/", token=token)

    # Batches of concurrent requests until both workers have served some (the kernel picks who accepts).
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(gunicorn.pids_that_answered("POST", "/api/v1/payments/")) < 2 or sent == 0:
            assert sent < 10 * BATCH, "one worker took every request"
            batch = range(sent, sent + BATCH)
            assert list(pool.map(create, batch)) == [201] * BATCH
            assert list(pool.map(missing, batch)) == [404] * BATCH
            sent += BATCH

    scrapes = 0
    while len(gunicorn.pids_that_answered("GET", "/metrics")) < 2 or scrapes < 6:
        assert scrapes < 60, "one worker answered every scrape"
        samples = gunicorn.scrape()
        scrapes += 1
        assert samples[("payment_transactions_total", frozenset(CREATED.items()))] == sent
        assert samples[("idempotency_requests_total", frozenset({"outcome": "new"}.items()))] == sent
        assert samples[("payment_errors_total", frozenset({"code": "resource_missing"}.items()))] == sent
        assert samples[("django_http_responses_total_by_status_total", frozenset({"status": "201"}.items()))] == sent
        assert samples[("outbox_lag_seconds", frozenset())] >= 0  # scrape-time gauges: computed by whoever answers

    # A worker that dies takes nothing with it: its counters stay in the sum, its replacement adds to them.
    victim = min(gunicorn.worker_pids())
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in gunicorn.worker_pids() and len(gunicorn.worker_pids()) == 2,
        seconds=START_SECONDS,
        what="gunicorn to replace the worker",
    )
    wait_until(lambda: gunicorn.request("GET", "/health/live") == 200, seconds=START_SECONDS, what="the new worker")
    for _ in range(6):
        samples = gunicorn.scrape()
        assert samples[("payment_transactions_total", frozenset(CREATED.items()))] == sent
        assert samples[("payment_errors_total", frozenset({"code": "resource_missing"}.items()))] == sent
