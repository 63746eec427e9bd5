"""Benchmark the payments API in-process on PostgreSQL: throughput, latency percentiles, queries, memory.

Run with `make bench` (it starts a throwaway PostgreSQL and Redis). It prints figures; it asserts nothing.
Each request goes through the whole Django stack (middleware, JWT auth, DRF, services, the simulator
gateway in the cache) with the test client, so network and gunicorn costs are left out.
"""

import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("RATELIMIT_ENABLE", "false")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

from accounts.models import User  # noqa: E402

N = int(os.environ.get("BENCH_REQUESTS", "300"))
SAMPLE = 20


def _client() -> APIClient:
    user, _ = User.objects.get_or_create(username="bench-shop", defaults={"api_role": "storefront"})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def measure(name: str, request: Callable[[int], object]) -> None:
    """Latency and throughput over N requests; then queries and memory over a few more, measured apart
    (tracemalloc and query logging slow Python down and would distort the timings)."""
    latencies = []
    started = time.perf_counter()
    for i in range(N):
        t0 = time.perf_counter()
        request(i)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    queries = []
    for i in range(N, N + SAMPLE):
        with CaptureQueriesContext(connection) as captured:
            request(i)
        queries.append(sum(1 for q in captured if q["sql"] not in {"BEGIN", "COMMIT"}))
    tracemalloc.start()
    for i in range(N + SAMPLE, N + 2 * SAMPLE):
        request(i)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<26} {N / elapsed:7.1f} req/s  p50 {cuts[49]:6.1f} ms  p95 {cuts[94]:6.1f} ms  "
        f"p99 {cuts[98]:6.1f} ms  queries/request {statistics.mean(queries):4.1f} (max {max(queries)})  "
        f"peak memory over {SAMPLE} requests {peak / 1024:6.0f} KiB"
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    client = _client()
    body = {"amount": 2000, "currency": "usd", "customer_id": "cus_b", "payment_method": "pm_card_visa"}
    ids: list[str] = []

    def create_confirm(i: int) -> None:
        # a customer per payment: below the risk rules' velocity limits, so these are captured and refundable
        response = client.post(
            "/api/v1/payments/",
            {**body, "customer_id": f"cus_b{i}", "confirm": True},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"b-{time.time()}-{i}",
        )
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])

    def create_confirm_busy_customer(i: int) -> None:
        # one customer, e-mail and IP with hundreds of payments in the windows: held for review by velocity
        response = client.post(
            "/api/v1/payments/",
            {**body, "customer_email": "busy@example.com", "customer_ip": "203.0.113.9", "confirm": True},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"busy-{time.time()}-{i}",
        )
        assert response.status_code == 201, response.content

    def retrieve(i: int) -> None:
        assert client.get(f"/api/v1/payments/{ids[i % len(ids)]}/").status_code == 200

    def list_page(i: int) -> None:
        assert client.get("/api/v1/payments/?page_size=100").status_code == 200

    def feed_page(i: int) -> None:
        assert client.get("/api/v1/events/?page_size=100").status_code == 200

    def refund(i: int) -> None:
        response = client.post(
            f"/api/v1/payments/{ids[i]}/refunds/", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY=f"r-{i}"
        )
        assert response.status_code == 201, response.content

    print(f"payments API benchmark: {N} requests per line, PostgreSQL {connection.pg_version}, in-process client")
    measure("POST payments (confirm)", create_confirm)
    measure("POST payments (busy customer)", create_confirm_busy_customer)
    measure("GET payment", retrieve)
    measure("GET payments (100/page)", list_page)
    measure("GET events (100/page)", feed_page)
    measure("POST refund", refund)


if __name__ == "__main__":
    main()
