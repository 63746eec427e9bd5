"""The back-office changelists run a fixed number of queries, whatever the number of rows shown."""

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit.models import ApprovalRequest
from payments.models import Payment
from refunds.models import Refund
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.audit.factories import ApprovalRequestFactory, StaffActionFactory
from tests.payments.factories import PaymentFactory
from tests.refunds.factories import RefundFactory
from tests.webhooks.factories import WebhookEventFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

CURRENCIES = ("usd", "jpy", "kwd")


def _payments(count: int) -> list[Payment]:
    shop = UserFactory()
    return Payment.objects.bulk_create(
        PaymentFactory.build(
            succeeded=True,
            client=shop,
            amount=1000 + n,
            currency=CURRENCIES[n % 3],
            customer_id=f"cus_{n}",
            order_id=f"ord_{n}",
        )
        for n in range(count)
    )


def _seed_payments(count: int, staff: User) -> None:
    _payments(count)


def _seed_refunds(count: int, staff: User) -> None:
    Refund.objects.bulk_create(
        RefundFactory.build(payment=payment, amount=100, requested_by=staff) for payment in _payments(count)
    )


def _seed_webhook_events(count: int, staff: User) -> None:
    WebhookEvent.objects.bulk_create(
        WebhookEventFactory.build(stripe_id=f"evt_{payment.public_id}", payment=payment) for payment in _payments(count)
    )


def _seed_staff_actions(count: int, staff: User) -> None:
    StaffActionFactory.create_batch(count, actor=staff, action="export_csv")  # hash-chained: one at a time


def _seed_approval_requests(count: int, staff: User) -> None:
    other = StaffUserFactory()
    ApprovalRequest.objects.bulk_create(
        ApprovalRequestFactory.build(
            object_id=f"pay_{n}",
            params={"amount": 100_000, "currency": "usd"},
            reason="big",
            requested_by=staff,
            decided_by=other if n % 2 else None,
        )
        for n in range(count)
    )


CHANGELISTS = [
    pytest.param("/admin/payments/payment/", _seed_payments, id="payment"),
    pytest.param("/admin/refunds/refund/", _seed_refunds, id="refund"),
    pytest.param("/admin/webhooks/webhookevent/", _seed_webhook_events, id="webhookevent"),
    pytest.param("/admin/audit/staffaction/", _seed_staff_actions, id="staffaction"),
    pytest.param("/admin/audit/approvalrequest/", _seed_approval_requests, id="approvalrequest"),
]


def _queries(admin_client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(("url", "seed"), CHANGELISTS)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, admin_user, url: str, seed: Callable[[int, User], None]
):
    # given 10 rows, then 100 (the default page size)
    seed(10, admin_user)
    at_10 = _queries(admin_client, url)
    seed(90, admin_user)
    at_100 = _queries(admin_client, url)

    # then the changelist runs exactly as many queries for 100 rows as for 10
    assert len(admin_client.get(url).context["cl"].result_list) == 100
    assert at_100 == at_10
