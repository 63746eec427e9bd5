"""Benchmark the customer changelist and page at 1 M customers (make bench; issue #17: "fast at 1 M customers").

Seeds the customers (and a gateway customer for each, and a saved card for every tenth) with one
INSERT … SELECT generate_series per table, their e-mails then encrypted and blind-indexed as the service
stores them (issue #20: sealed in Python, copied in, one UPDATE), then requests as a superuser through the
test client: the changelist unfiltered, searched by our id, the storefront's customer id, an e-mail (through
its blind index) and a gateway customer id, and one customer's page. Prints the server time per request
(median of a few runs after a warm-up) and the queries per request, as bench/admin_bench.py does for
payments. Prints figures; asserts nothing.
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
from django_otp import DEVICE_ID_SESSION_KEY  # noqa: E402
from django_otp.plugins.otp_totp.models import TOTPDevice  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.seed import insert_rows  # noqa: E402
from config.encryption import email_index  # noqa: E402
from customers.models import Customer, CustomerGatewayToken, PaymentMethod  # noqa: E402

COUNT = int(os.environ.get("BENCH_CUSTOMERS_SIZE", "1000000"))
RUNS = 5
PREFIX = "cu_bench"


def _seed(client: User, count: int) -> None:
    insert_rows(
        Customer,
        count,
        {
            "public_id": f"'{PREFIX}' || lpad(n::text, 10, '0')",
            "client_id": str(int(client.pk)),
            "customer_id": "'bench_' || n::text",
            "email": "'buyer' || n::text || '@example.com'",
            "created_at": "now() - (n * 30 || ' seconds')::interval",
            "updated_at": "now()",
        },
    )
    _seal_emails(count)
    first = Customer.objects.filter(public_id__startswith=PREFIX).order_by("id").values_list("id", flat=True)[0]
    insert_rows(
        CustomerGatewayToken,
        count,
        {
            "customer_id": f"{first} + n",
            "gateway": "'simulator'",
            "reference": "'cus_bench' || n::text",
            "created_at": "now()",
        },
    )
    insert_rows(
        PaymentMethod,
        count // 10,
        {
            "public_id": "'pmt_bench' || lpad(n::text, 10, '0')",
            "customer_id": f"{first} + n * 10",
            "gateway": "'simulator'",
            "gateway_reference": "'pm_bench' || n::text",
            "brand": "'visa'",
            "last4": "'4242'",
            "exp_month": "12",
            "exp_year": "2030",
            "created_at": "now()",
            "updated_at": "now()",
        },
    )


def _seal_emails(count: int) -> None:
    """Encrypt the seeded e-mails and fill their blind index, as the service writes them (search reads the index)."""
    field = Customer._meta.get_field("email")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_sealed (public_id text PRIMARY KEY, email text, email_index text)")
        with cursor.cursor.copy("COPY bench_sealed (public_id, email, email_index) FROM STDIN") as copy:
            for n in range(count):
                email = f"buyer{n}@example.com"
                copy.write_row((f"{PREFIX}{n:010d}", field.get_prep_value(email), email_index(email)))
        cursor.execute(
            "UPDATE customers_customer c SET email = s.email, email_index = s.email_index"
            " FROM bench_sealed s WHERE c.public_id = s.public_id"
        )
        cursor.execute("DROP TABLE bench_sealed")
        cursor.execute("ANALYZE customers_customer")


def _verified(client: Client, staff: User) -> None:
    """The session passed the second factor (issue #20: the admin asks staff for a TOTP code after the password)."""
    device, _ = TOTPDevice.objects.get_or_create(user=staff, name="bench", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def _clean() -> None:
    customers = Customer.objects.filter(public_id__startswith=PREFIX)
    Customer.objects.filter(public_id__startswith=PREFIX).update(default_payment_method=None)
    PaymentMethod.objects.filter(customer__in=customers)._raw_delete(connection.alias)
    CustomerGatewayToken.objects.filter(customer__in=customers)._raw_delete(connection.alias)
    customers._raw_delete(connection.alias)


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
    print(
        f"customers {label:<24} {statistics.median(timings):7.1f} ms median (max {max(timings):7.1f} ms), "
        f"{query_counts[-1]} queries; slowest query {float(slowest['time']) * 1000:.1f} ms",
        flush=True,
    )


def main() -> None:
    setup_test_environment()
    call_command("migrate", verbosity=0)
    shop, _ = User.objects.get_or_create(username="bench-customers-shop", defaults={"api_role": "storefront"})
    staff, _ = User.objects.get_or_create(username="bench-customers-staff", defaults={"is_staff": True})
    staff.is_superuser = staff.is_staff = True
    staff.save()
    _clean()
    started = time.perf_counter()
    _seed(shop, COUNT)
    print(f"seeded {COUNT:,} customers (+ gateway ids, {COUNT // 10:,} cards) in {time.perf_counter() - started:.1f} s")
    client = Client()
    client.force_login(staff)
    _verified(client, staff)
    middle = COUNT // 2 - (COUNT // 2) % 10  # a customer with a saved card
    customer = Customer.objects.get(public_id=f"{PREFIX}{middle:010d}")
    try:
        _measure(client, "unfiltered", "/admin/customers/customer/")
        _measure(client, "search our id", f"/admin/customers/customer/?q={customer.public_id}")
        _measure(client, "search customer id", f"/admin/customers/customer/?q=bench_{middle}")
        _measure(client, "search e-mail", f"/admin/customers/customer/?q=Buyer{middle}@example.com")
        _measure(client, "search gateway id", f"/admin/customers/customer/?q=cus_bench{middle}")
        _measure(client, "customer page", f"/admin/customers/customer/{customer.pk}/change/")
    finally:
        _clean()


if __name__ == "__main__":
    main()
