"""Reconciling is batched: 10,000 payments take a handful more queries than 1,000, not 9,000 more."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateways.base import IntentResult
from payments.models import Payment
from reconciliation.models import RunStatus
from reconciliation.services import reconcile
from tests.payments.factories import PaymentFactory
from tests.reconciliation.conftest import ListedGateway

pytestmark = pytest.mark.django_db


def _seed(shop, count: int, prefix: str) -> ListedGateway:
    """`count` succeeded payments (bulk insert) and the gateway's matching intents."""
    Payment.objects.bulk_create(
        [
            PaymentFactory.build(
                succeeded=True,
                client=shop,
                amount=1000 + n,
                customer_id="cus_bulk",
                gateway_reference=f"pi_{prefix}_{n}",
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    return ListedGateway(
        intents=[
            IntentResult(
                reference=f"pi_{prefix}_{n}",
                status="succeeded",
                amount=1000 + n,
                currency="usd",
                capture_method="automatic",
                amount_received=1000 + n,
            )
            for n in range(count)
        ]
    )


def _queries(shop, count: int, prefix: str) -> int:
    gateway = _seed(shop, count, prefix)
    now = datetime.now(tz=UTC)
    with CaptureQueriesContext(connection) as captured:
        run = reconcile(since=now - timedelta(hours=1), until=now + timedelta(hours=1), gateway=gateway)
    assert (run.status, run.matched) == (RunStatus.CLEAN, count)
    Payment.objects.filter(gateway_reference__startswith=f"pi_{prefix}_").delete()
    return len(captured)


def test_query_count_grows_by_one_per_batch_not_per_row(shop):
    small = _queries(shop, 1_000, "small")  # one batch of 2,000
    large = _queries(shop, 10_000, "large")  # five batches

    assert large == small + 4
    assert small <= 9  # the disputes pass adds one count (its gateway lists none here)
