"""Benchmark the payment changelist at 1 M payments (make bench).

Seeds the payments with one INSERT … SELECT generate_series (statuses, currencies and a year of
created_at spread over the rows), then requests the changelist through the test client as a
superuser: unfiltered, filtered by status, and searched by public id. Prints the server time per
request (median of a few runs, after one warm-up) and the queries per request. Target (issue 8):
each request < 300 ms. Prints figures; asserts nothing.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.seed import insert_payments  # noqa: E402
from payments.models import Payment  # noqa: E402

COUNT = int(os.environ.get("BENCH_ADMIN_SIZE", "1000000"))
RUNS = 5
STATUSES = ("succeeded", "succeeded", "succeeded", "succeeded", "failed", "canceled", "requires_payment_method")


def _seed(client: User, count: int) -> None:
    """Insert `count` payments in one statement: statuses cycle through STATUSES, currencies through four."""
    statuses = "ARRAY[" + ", ".join(f"'{status}'" for status in STATUSES) + "]"
    overrides = {
        "public_id": "'pay_adminbench' || lpad(n::text, 10, '0')",
        "client_id": str(int(client.pk)),
        "amount": "1000 + n %% 5000",
        "currency": "(ARRAY['usd', 'eur', 'jpy', 'kwd'])[1 + n %% 4]",
        "status": f"({statuses})[1 + n %% {len(STATUSES)}]",
        "customer_id": "'cus_' || (n %% 50000)::text",
        "order_id": "'ord_' || n::text",
        "gateway": "'adminbench'",
        "created_at": "now() - (n * 30 || ' seconds')::interval",  # one row per 30 s: about a year
        "updated_at": "now()",
    }
    insert_payments(count, overrides)


def _clean() -> None:
    Payment.objects.filter(gateway="adminbench")._raw_delete(connection.alias)  # no history or events


def _measure(client: Client, label: str, url: str) -> None:
    client.get(url)  # warm-up: templates, plans, caches
    timings, query_counts = [], []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        query_counts.append(len(queries))
        slowest = max(queries.captured_queries, key=lambda query: float(query["time"]))
    if os.environ.get("BENCH_ADMIN_VERBOSE"):
        for query in queries.captured_queries:
            print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:300]}")
    shown = len(response.context["cl"].result_list)
    print(
        f"changelist {label:<22} {statistics.median(timings):7.1f} ms median (max {max(timings):7.1f} ms), "
        f"{query_counts[-1]} queries, {shown} rows shown; slowest query {float(slowest['time']) * 1000:.1f} ms",
        flush=True,
    )


def main() -> None:
    setup_test_environment()  # the test client's host is allowed; responses keep their context
    call_command("migrate", verbosity=0)
    shop, _ = User.objects.get_or_create(username="bench-admin-shop", defaults={"api_role": "storefront"})
    staff, _ = User.objects.get_or_create(username="bench-admin-staff", defaults={"is_staff": True})
    staff.is_superuser = staff.is_staff = True
    staff.save()
    _clean()
    started = time.perf_counter()
    _seed(shop, COUNT)
    print(f"seeded {COUNT:,} payments in {time.perf_counter() - started:.1f} s", flush=True)
    client = Client()
    client.force_login(staff)
    # The admin asks staff for a TOTP code after the password (issue #20): mark this session as having passed it.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=staff, name="bench", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    searched = (
        Payment.objects.filter(gateway="adminbench").order_by("id").values_list("public_id", flat=True)[COUNT // 2]
    )
    try:
        _measure(client, "unfiltered", "/admin/payments/payment/")
        _measure(client, "status=failed", "/admin/payments/payment/?status__exact=failed")
        _measure(client, "status=succeeded", "/admin/payments/payment/?status__exact=succeeded")
        _measure(client, "search public id", f"/admin/payments/payment/?q={searched}")
        _measure(client, "search order id", f"/admin/payments/payment/?q=ord_{COUNT // 3}")
    finally:
        _clean()


if __name__ == "__main__":
    main()
