"""The admin index dashboard: its figures, its query count and its page."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from backoffice.charts import svg_bar_chart, svg_rate_chart
from backoffice.selectors import dashboard_data
from payments.models import Payment
from payments.states import PaymentStatus as S
from reconciliation.models import DiscrepancyKind, DiscrepancyState
from refunds.models import Refund
from refunds.states import RefundStatus
from tests.accounts.factories import StaffUserFactory
from tests.audit.factories import ApprovalRequestFactory
from tests.payments.factories import PaymentFactory
from tests.reconciliation.factories import DiscrepancyFactory, ReconciliationRunFactory
from tests.refunds.factories import RefundFactory

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
MAR_2 = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)  # the first day of the 30-day window ending on 31 March
MAR_30 = datetime(2025, 3, 30, 9, 0, tzinfo=UTC)


def _payment(client: User, amount: int, currency: str, status: str, **extra) -> Payment:
    """An unsaved payment in `status` (the factory's trait of that name), for `_create_at` to insert."""
    return PaymentFactory.build(
        **{S(status).value: True}, client=client, amount=amount, currency=currency, customer_id="cus_dash", **extra
    )


def _refund(payment: Payment, amount: int, status: str, **extra) -> Refund:
    trait = {} if status == RefundStatus.PENDING else {RefundStatus(status).value: True}
    return RefundFactory.build(**trait, payment=payment, amount=amount, **extra)


def _create_at(at: datetime, rows: list) -> list:
    with time_machine.travel(at, tick=False):
        return type(rows[0]).objects.bulk_create(rows)


@pytest.fixture
def seeded(shop):
    """Payments in usd, jpy and kwd on the first, the penultimate and the last day of the window, and one before."""
    _create_at(MAR_2 - timedelta(seconds=1), [_payment(shop, 99_999, "usd", S.SUCCEEDED)])
    partial, _, _ = _create_at(
        MAR_2,
        [
            _payment(shop, 1000, "usd", S.PARTIALLY_REFUNDED, amount_refunded=400),
            _payment(shop, 700, "usd", S.CANCELED),
            _payment(shop, 300, "usd", S.PROCESSING),  # untouched since: stuck
        ],
    )
    refunded = _create_at(
        MAR_30,
        [
            _payment(shop, 1999, "usd", S.SUCCEEDED),
            _payment(shop, 1, "usd", S.SUCCEEDED),
            _payment(shop, 500, "usd", S.FAILED, needs_attention=True),
            _payment(shop, 500, "jpy", S.SUCCEEDED),
            _payment(shop, 1500, "kwd", S.REFUNDED, amount_refunded=1500),
            _payment(shop, 800, "usd", S.REQUIRES_CAPTURE, pending_operation="capture", pending_operation_at=MAR_30),
        ],
    )[4]
    _create_at(NOW - timedelta(hours=1), [_payment(shop, 2500, "kwd", S.SUCCEEDED)])
    _create_at(
        MAR_30,
        [
            _refund(refunded, 1500, RefundStatus.SUCCEEDED),
            _refund(partial, 400, RefundStatus.SUCCEEDED),
            _refund(partial, 100, RefundStatus.FAILED),
            _refund(partial, 50, RefundStatus.PENDING, needs_attention=True),
            _refund(partial, 60, RefundStatus.PENDING),  # stuck
        ],
    )
    agent = StaffUserFactory()
    ApprovalRequestFactory.create_batch(2, requested_by=agent)
    ApprovalRequestFactory(approved=True, requested_by=agent)
    run = ReconciliationRunFactory(unresolved=True, window_start=MAR_2, window_end=NOW)
    DiscrepancyFactory(run=run, kind=DiscrepancyKind.AMOUNT)
    DiscrepancyFactory(run=run, kind=DiscrepancyKind.STATUS, state=DiscrepancyState.RESOLVED)


def test_dashboard_data_sums_captured_volume_per_day_and_currency(seeded):
    # when
    with time_machine.travel(NOW, tick=False):
        data = dashboard_data(days=30)

    # then
    assert (data.start, data.end, len(data.days)) == (date(2025, 3, 2), date(2025, 3, 31), 30)
    volumes = {v.currency: v for v in data.volumes}
    assert list(volumes) == ["jpy", "kwd", "usd"]
    assert volumes["usd"].daily == [1000] + [0] * 27 + [2000, 0]
    assert volumes["jpy"].daily == [0] * 28 + [500, 0]
    assert volumes["kwd"].daily == [0] * 28 + [1500, 2500]
    assert [(v.total, v.captured_count, v.total_display) for v in data.volumes] == [
        (500, 1, "¥500"),
        (4000, 2, "4.000 KD"),
        (3000, 3, "$30.00"),
    ]


def test_dashboard_data_success_rate_is_captured_over_payments_with_an_outcome(seeded):
    with time_machine.travel(NOW, tick=False):
        data = dashboard_data(days=30)

    assert (data.payment_count, data.captured_count, data.outcome_count) == (10, 6, 8)
    assert data.success_rate == 75.0
    assert data.daily_rates == [50.0] + [None] * 27 + [80.0, 100.0]


def test_dashboard_data_counts_refunds_approvals_discrepancies_and_stuck_operations(seeded):
    with time_machine.travel(NOW, tick=False):
        data = dashboard_data(days=30)

    assert [(r.currency, r.count, r.succeeded_count, r.volume, r.volume_display) for r in data.refunds] == [
        ("kwd", 1, 1, 1500, "1.500 KD"),
        ("usd", 4, 1, 400, "$4.00"),
    ]
    assert data.refund_count == 5
    assert data.open_reviews == 0  # counted in tests/risk (the review queue)
    assert data.pending_approvals == 2
    assert data.open_discrepancies == 1
    stuck = data.stuck
    assert (
        stuck.payments_needing_attention,
        stuck.payments_stuck,
        stuck.refunds_needing_attention,
        stuck.refunds_stuck,
        stuck.total,
    ) == (1, 2, 1, 1, 5)


def test_dashboard_data_without_money_runs_no_aggregate(seeded, django_assert_num_queries):
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(7):
        data = dashboard_data(days=30, include_money=False)

    assert (data.include_money, data.volumes, data.refunds, data.payment_count) == (False, [], [], 0)
    assert (data.pending_approvals, data.open_discrepancies, data.stuck.total) == (2, 1, 5)


def _queries_for(shop: User, count: int) -> int:
    Payment.objects.all().delete()
    currencies = ["usd", "jpy", "kwd"]
    rows = [_payment(shop, 1000 + i * 10, currencies[i % 3], S.SUCCEEDED) for i in range(count)]
    for offset in range(0, count, 100):  # spread over the window's days
        _create_at(NOW - timedelta(days=(offset // 100) % 30), rows[offset : offset + 100])
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
        data = dashboard_data(days=30)
    assert data.payment_count == count
    return len(queries)


def test_dashboard_data_query_count_does_not_grow_with_payments(shop):
    assert _queries_for(shop, 10) == _queries_for(shop, 1000) == 9


def test_svg_charts_escape_labels_and_scale_to_the_peak():
    days = [date(2025, 3, 1), date(2025, 3, 2)]

    bars = svg_bar_chart([50, 100], days, label="<usd>", format_value=lambda v: f"<{v}>")
    rates = svg_rate_chart([None, 50.0], days, label="rate")

    assert bars.startswith('<svg class="dash-chart"')
    assert "<usd>" not in bars
    assert "&lt;usd&gt;" in bars
    assert 'height="56.0"' in bars  # the plot area is 112 px high
    assert 'height="112.0"' in bars
    assert "2025-03-02: &lt;100&gt;" in bars
    assert "2025-03-01: no outcome" in rates
    assert 'height="56.0"' in rates


@pytest.mark.django_db
def test_admin_index_shows_charts_and_formatted_amounts(admin_client, shop):
    # given two captured payments today
    Payment.objects.bulk_create([_payment(shop, 1999, "usd", S.SUCCEEDED), _payment(shop, 1500, "kwd", S.SUCCEEDED)])

    # when
    response = admin_client.get("/admin/")

    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count('<svg class="dash-chart"') == 3  # usd, kwd, success rate
    assert "Captured USD: $19.99" in body
    assert "Captured KWD: 1.500 KD" in body
    assert 'id="dash-success-rate"' in body
    assert "100.0 %" in body
    assert 'class="app-payments module' in body  # the admin's own app list is still there


@pytest.mark.django_db
def test_admin_index_hides_money_from_staff_who_cannot_view_payments(client, shop):
    # given a staff member who may only view approval requests
    Payment.objects.bulk_create([_payment(shop, 1999, "usd", S.SUCCEEDED)])
    client.force_login(StaffUserFactory(permissions=["audit.view_approvalrequest"]))

    # when
    body = client.get("/admin/").content.decode()

    # then
    assert 'id="dash-approvals"' in body
    assert "/admin/audit/approvalrequest/?status__exact=pending" in body
    assert "$19.99" not in body
    assert 'class="dash-chart"' not in body
    assert 'id="dash-payments"' not in body


@pytest.mark.django_db
def test_admin_index_links_open_discrepancies_for_staff_who_may_view_them(client, shop):
    # given an open discrepancy and a staff member who may view discrepancies (and nothing else)
    DiscrepancyFactory(kind=DiscrepancyKind.AMOUNT)
    client.force_login(StaffUserFactory(permissions=["reconciliation.view_discrepancy"]))

    # when
    body = client.get("/admin/").content.decode()

    # then the card links to the reconciliation app's changelist, filtered on open ones
    assert 'href="/admin/reconciliation/discrepancy/?state__exact=open">1</a>' in body
    assert "/admin/audit/approvalrequest/" not in body
