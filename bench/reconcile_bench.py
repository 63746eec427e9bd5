"""Benchmark reconciliation: 100 k and 1 M payments against as many gateway records (make bench).

Seeds the payments with one INSERT … SELECT generate_series, lists a generated gateway (a few records
differ on purpose), and prints the time and the process's peak RSS for each size. Targets (issue 8):
1 M reconciled in ≤ 60 s with peak RSS ≤ 300 MB. Prints figures; asserts nothing.
"""

import os
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.seed import insert_payments  # noqa: E402
from gateways.base import IntentResult, RefundResult  # noqa: E402
from payments.models import Payment  # noqa: E402
from reconciliation.models import Discrepancy, ReconciliationRun  # noqa: E402
from reconciliation.services import reconcile  # noqa: E402

SIZES = [int(size) for size in os.environ.get("BENCH_RECONCILE_SIZES", "100000,1000000").split(",")]
DRIFT_EVERY = 50_000  # one payment in 50,000 differs (amount), and as many intents are missing here


def _amount(n: int) -> int:
    return 1000 + n % 5000


class GeneratedGateway:
    """`count` succeeded intents pi_bench_<n>, generated as they are listed (like pages from Stripe)."""

    name = "bench"

    def __init__(self, count: int) -> None:
        self.count = count

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        for n in range(self.count):
            amount = _amount(n)
            yield IntentResult(
                reference=f"pi_bench_{n:08d}",
                status="succeeded",
                amount=amount,
                currency="usd",
                capture_method="automatic",
                amount_received=amount,
            )
        for n in range(self.count // DRIFT_EVERY):  # intents we never recorded
            yield IntentResult(
                reference=f"pi_bench_stranger_{n}",
                status="succeeded",
                amount=500,
                currency="usd",
                capture_method="automatic",
            )

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]:
        return iter(())


def _seed(client: User, count: int) -> None:
    """Insert `count` succeeded payments matching the generated intents, in one statement."""
    overrides = {
        "public_id": "'pay_bench' || lpad(n::text, 15, '0')",
        "client_id": str(int(client.pk)),
        "amount": f"1000 + n %% 5000 + (CASE WHEN n %% {DRIFT_EVERY} = 1 THEN 1 ELSE 0 END)",
        "currency": "'usd'",
        "status": "'succeeded'",
        "amount_received": "1000 + n %% 5000",
        "customer_id": "'cus_bench'",
        "gateway": "'bench'",
        "gateway_reference": "'pi_bench_' || lpad(n::text, 8, '0')",
        "created_at": "now()",
        "updated_at": "now()",
    }
    insert_payments(count, overrides)


def _clean() -> None:
    Discrepancy.objects.filter(run__gateway="bench").delete()
    ReconciliationRun.objects.filter(gateway="bench").delete()
    Payment.objects.filter(gateway="bench")._raw_delete(connection.alias)  # no history or events to cascade to


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    call_command("migrate", verbosity=0)
    client, _ = User.objects.get_or_create(username="bench-reconcile", defaults={"api_role": "storefront"})
    _clean()
    for count in SIZES:
        started = time.perf_counter()
        _seed(client, count)
        seeded = time.perf_counter() - started
        reset_queries()
        rss_before = _rss_mb()
        now = datetime.now(tz=UTC)
        started = time.perf_counter()
        run = reconcile(since=now - timedelta(hours=1), until=now + timedelta(hours=1), gateway=GeneratedGateway(count))
        elapsed = time.perf_counter() - started
        print(
            f"reconcile {count:>9,} payments vs {run.gateway_records:>9,} gateway records: {elapsed:6.1f} s "
            f"({count / elapsed:,.0f}/s), peak RSS {_rss_mb():.0f} MB (before {rss_before:.0f} MB); "
            f"{run.matched:,} matched, {run.discrepancies_found} discrepancies, {run.status}"
            f" [seeded in {seeded:.1f} s]",
            flush=True,
        )
        _clean()


if __name__ == "__main__":
    main()
