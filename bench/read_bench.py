"""Benchmark the API's reads in-process on PostgreSQL, each as a ratio to a bare JWT DRF view of the same run.

Run with `scripts/with-services.sh .venv/bin/python bench/read_bench.py` (part of `make bench`). It calls
the WSGI application in a loop, the way gunicorn's worker thread does (whole middleware stack, JWT auth,
DEBUG off, persistent connection), so the network, gunicorn and the load generator are left out and the
figures show the Python and SQL cost of each read. Lines: the floor (`/bench/floor/`, bench/urls.py),
payment retrieve, the payment list at 100 a page, the event feed at 100 a page, refund retrieve and the
refund list at 100 a page; req/s, p50/p99, statements per request, ratio to the floor.
`BENCH_PROFILE=1` prints the top of a cProfile of each read instead. It prints figures; it asserts nothing.
"""

import base64
import cProfile
import io
import os
import pstats
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ["DEBUG"] = "false"
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", base64.b64encode(secrets.token_bytes(32)).decode())
os.environ.setdefault("BLIND_INDEX_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
os.environ.setdefault("RATELIMIT_ENABLE", "false")
os.environ.setdefault("PAYMENTS_GATEWAY", "simulator")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

from accounts.models import ApiRole, User  # noqa: E402
from payments.services import payment_create  # noqa: E402
from refunds.services import refund_create  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))  # per endpoint
SLICE = 0.25  # seconds per turn: the endpoints take turns, so load on the machine falls on all alike
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
SEED = 120  # payments (and so >= 100 events, >= 100 refunds) of the bench's storefront

application = get_wsgi_application()


def wsgi_get(token: str, path: str, query: str = "") -> Callable[[], bytes]:
    """One GET through the WSGI application, like a gunicorn worker thread serves it; returns the body."""
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_ACCEPT": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }

    def call() -> bytes:
        statuses: list[str] = []
        environ = {**base, "wsgi.input": io.BytesIO(b"")}
        response = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        try:
            body = b"".join(response)
        finally:
            getattr(response, "close", lambda: None)()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"GET {path}?{query}: {statuses[0]} {body[:300]!r}")
        return body

    return call


def seed() -> tuple[User, list[str], list[str]]:
    call_command("migrate", verbosity=0)
    shop, _ = User.objects.get_or_create(username="bench-reader", defaults={"api_role": ApiRole.STOREFRONT})
    payments = []
    for n in range(SEED):
        payment = payment_create(
            client=shop,
            amount=2000 + n,
            currency="usd",
            customer_id=f"cus_read{n}",
            order_id=f"ord_{n}",
            description="A bench order",
            metadata={"cart": str(n)},
            payment_method="pm_card_visa",
            confirm=True,
        )
        payments.append(payment)
    refunds = [
        refund_create(payment_id=payment.pk, requested_by=shop, amount=500).public_id
        for payment in payments
        if payment.status == "succeeded"
    ]
    return shop, [payment.public_id for payment in payments], refunds


def measure(calls: dict[str, Callable[[], bytes]]) -> dict[str, tuple[float, float, list[float]]]:
    """Per endpoint: requests per second of wall time, CPU ms per request in this process, and each
    request's latency (ms). The endpoints take turns in slices of SLICE seconds, SECONDS each in all,
    so a load change on the machine falls on all of them alike and the ratios stay comparable."""
    for call in calls.values():
        for _ in range(20):  # warm up: caches, the connection, first-use imports
            call()
    spent = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    while min(spent.values()) < SECONDS:
        for name, call in calls.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            while (now := time.perf_counter()) - started < SLICE:
                call()
                latencies[name].append((time.perf_counter() - now) * 1000)
            spent[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - started_cpu
    return {
        name: (len(latencies[name]) / spent[name], cpu[name] * 1000 / len(latencies[name]), latencies[name])
        for name in calls
    }


def statements(call: Callable[[], bytes]) -> int:
    count = 0

    def wrapper(execute: Callable, sql: str, params: object, many: bool, context: object) -> object:
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        call()
    return count


def profile(name: str, call: Callable[[], bytes]) -> None:
    call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(45)
    print(f"===== {name} (200 requests)\n{out.getvalue()}")


def main() -> None:
    shop, payment_ids, refund_ids = seed()
    token = str(RefreshToken.for_user(shop).access_token)
    calls = {
        "floor (bare JWT DRF view)": wsgi_get(token, "/bench/floor/"),
        "GET payment": wsgi_get(token, f"/api/v1/payments/{payment_ids[0]}/"),
        "GET payments (100/page)": wsgi_get(token, "/api/v1/payments/", "page_size=100"),
        "GET events (100/page)": wsgi_get(token, "/api/v1/events/", "page_size=100"),
        "GET refund": wsgi_get(token, f"/api/v1/refunds/{refund_ids[0]}/"),
        "GET refunds (100/page)": wsgi_get(token, "/api/v1/refunds/", "page_size=100"),
    }
    if PROFILE:
        for name, call in calls.items():
            profile(name, call)
        return
    results = measure(calls)
    floor = results["floor (bare JWT DRF view)"][0]
    print(
        f"read benchmark: WSGI call loop in-process, PostgreSQL {connection.pg_version}, {SECONDS:g} s per line "
        f"in {SLICE:g} s turns, {len(payment_ids)} payments, {len(refund_ids)} refunds"
    )
    for name, call in calls.items():
        rps, cpu_ms, latencies = results[name]
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"{name:<27} {rps:7.1f} req/s  p50 {cuts[49]:6.2f} ms  p99 {cuts[98]:6.2f} ms  CPU {cpu_ms:5.2f} ms  "
            f"statements {statements(call):2d}  bytes {len(call()):6d}  ratio to floor {rps / floor:5.2f}"
        )


if __name__ == "__main__":
    main()
