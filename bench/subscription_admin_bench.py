"""Benchmark the subscription and invoice changelists at 1 M rows each (make bench; issue #18: "fast at 1 M rows").

Seeds 100k customers, 1 M subscriptions on one price (statuses cycling) and 1 M invoices, one INSERT … SELECT
generate_series per table (bench/seed.py), then requests as a superuser through the test client: each
changelist unfiltered, filtered by status, and searched (our id, the gateway's id, the storefront's customer
id). Prints the server time per request (median of a few runs after a warm-up) and the queries per request,
as bench/admin_bench.py does for payments. Prints figures; asserts nothing.
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
from bench.seed import insert_rows  # noqa: E402
from customers.models import Customer  # noqa: E402
from subscriptions.models import Invoice, Price, Product, Subscription  # noqa: E402

COUNT = int(os.environ.get("BENCH_SUBSCRIPTIONS_SIZE", "1000000"))
CUSTOMERS = max(1, COUNT // 10)
RUNS = 5
GATEWAY = "subbench"
STATUSES = "ARRAY['active', 'active', 'active', 'trialing', 'past_due', 'canceled', 'incomplete']"
INVOICE_STATUSES = "ARRAY['paid', 'paid', 'paid', 'open', 'void', 'uncollectible']"


def _seed(client: User) -> None:
    product = Product.objects.create(gateway=GATEWAY, reference="prod_bench", name="Bench plan")
    price = Price.objects.create(
        gateway=GATEWAY, reference="price_bench", product=product, unit_amount=900, currency="usd", interval="month"
    )
    insert_rows(
        Customer,
        CUSTOMERS,
        {
            "public_id": "'cu_subbench' || lpad(n::text, 10, '0')",
            "client_id": str(int(client.pk)),
            "customer_id": "'subbench_' || n::text",
            "created_at": "now()",
            "updated_at": "now()",
        },
    )
    first_customer = Customer.objects.filter(public_id__startswith="cu_subbench").order_by("id").values("id")[0]["id"]
    period = "now() - (n * 30 || ' seconds')::interval"
    insert_rows(
        Subscription,
        COUNT,
        {
            "public_id": "'sub_bench' || lpad(n::text, 10, '0')",
            "client_id": str(int(client.pk)),
            "customer_id": f"{first_customer} + n %% {CUSTOMERS}",
            "price_id": str(int(price.pk)),
            "status": f"({STATUSES})[1 + n %% 7]",
            "current_period_start": period,
            "current_period_end": f"{period} + interval '1 month'",
            "gateway": f"'{GATEWAY}'",
            "gateway_reference": "'sub_gw_bench' || n::text",
            "created_at": period,
            "updated_at": "now()",
        },
    )
    first_subscription = Subscription.objects.filter(gateway=GATEWAY).order_by("id").values("id")[0]["id"]
    insert_rows(
        Invoice,
        COUNT,
        {
            "public_id": "'in_bench' || lpad(n::text, 10, '0')",
            "client_id": str(int(client.pk)),
            "subscription_id": f"{first_subscription} + n",
            "customer_id": f"{first_customer} + n %% {CUSTOMERS}",
            "status": f"({INVOICE_STATUSES})[1 + n %% 6]",
            "currency": "'usd'",
            "amount_due": "900",
            "gateway": f"'{GATEWAY}'",
            "gateway_reference": "'in_gw_bench' || n::text",
            "created_at": period,
            "updated_at": "now()",
        },
    )


def _clean() -> None:
    Invoice.objects.filter(gateway=GATEWAY)._raw_delete(connection.alias)
    Subscription.objects.filter(gateway=GATEWAY)._raw_delete(connection.alias)
    Customer.objects.filter(public_id__startswith="cu_subbench")._raw_delete(connection.alias)
    Price.objects.filter(gateway=GATEWAY)._raw_delete(connection.alias)
    Product.objects.filter(gateway=GATEWAY)._raw_delete(connection.alias)


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
    print(
        f"{label:<34} {statistics.median(timings):7.1f} ms median (max {max(timings):7.1f} ms), "
        f"{query_counts[-1]} queries; slowest query {float(slowest['time']) * 1000:.1f} ms",
        flush=True,
    )


def main() -> None:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    shop, _ = User.objects.get_or_create(username="bench-subscriptions-shop", defaults={"api_role": "storefront"})
    staff, _ = User.objects.get_or_create(username="bench-subscriptions-staff", defaults={"is_staff": True})
    staff.is_superuser = staff.is_staff = True
    staff.save()
    _clean()
    started = time.perf_counter()
    _seed(shop)
    print(
        f"seeded {COUNT:,} subscriptions and invoices, {CUSTOMERS:,} customers in {time.perf_counter() - started:.1f} s"
    )
    client = Client()
    client.force_login(staff)
    # The admin asks staff for a TOTP code after the password (issue #20): mark this session as having passed it.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=staff, name="bench", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    middle = COUNT // 2
    subscriptions, invoices = "/admin/subscriptions/subscription/", "/admin/subscriptions/invoice/"
    try:
        _measure(client, "subscriptions unfiltered", subscriptions)
        _measure(client, "subscriptions status=past_due", f"{subscriptions}?status__exact=past_due")
        _measure(client, "subscriptions search our id", f"{subscriptions}?q=sub_bench{middle:010d}")
        _measure(client, "subscriptions search gateway id", f"{subscriptions}?q=sub_gw_bench{middle}")
        _measure(client, "subscriptions search customer id", f"{subscriptions}?q=subbench_{middle % CUSTOMERS}")
        _measure(client, "invoices unfiltered", invoices)
        _measure(client, "invoices status=open", f"{invoices}?status__exact=open")
        _measure(client, "invoices search our id", f"{invoices}?q=in_bench{middle:010d}")
    finally:
        _clean()


if __name__ == "__main__":
    main()
