"""The admin index dashboard: its figures, its query count and its page."""

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from backoffice.charts import svg_bar_chart, svg_rate_chart
from backoffice.selectors import dashboard_data, subscription_figures
from customers.models import Customer
from disputes.models import Dispute, DisputeStatusChange
from payments.models import Payment
from payments.states import PaymentStatus as S
from reconciliation.models import DiscrepancyKind, DiscrepancyState
from refunds.models import Refund
from refunds.states import RefundStatus
from subscriptions.models import Invoice, Price, Product, Subscription
from subscriptions.states import InvoiceStatus as IS
from subscriptions.states import SubscriptionStatus as SS
from tests.accounts.factories import StaffUserFactory
from tests.audit.factories import ApprovalRequestFactory
from tests.payments.factories import PaymentFactory
from tests.reconciliation.factories import DiscrepancyFactory, ReconciliationRunFactory
from tests.refunds.factories import RefundFactory

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
MAR_2 = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)  # the first day of the 30-day window ending on 31 March
MAR_30 = datetime(2025, 3, 30, 9, 0, tzinfo=UTC)
MAR_1 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)  # this month's start, for the subscription figures
_refs = itertools.count(1)


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
    """Queries of one dashboard over `count` payments, as many subscriptions and failed invoices, half as many
    disputes."""
    Dispute.objects.all().delete()
    Payment.objects.all().delete()
    Invoice.objects.all().delete()
    Subscription.objects.all().delete()
    currencies = ["usd", "jpy", "kwd"]
    rows = [_payment(shop, 1000 + i * 10, currencies[i % 3], S.SUCCEEDED) for i in range(count)]
    for offset in range(0, count, 100):  # spread over the window's days
        _create_at(NOW - timedelta(days=(offset // 100) % 30), rows[offset : offset + 100])
    prices = [_price(100 * (i + 1), currencies[i % 3], interval) for i, interval in enumerate(("month", "year", "day"))]
    statuses = [SS.ACTIVE, SS.PAST_DUE, SS.TRIALING, SS.CANCELED]
    customer = Customer.objects.create(client=shop, customer_id=f"cus_dash_many_{next(_refs)}")
    subscriptions = _create_at(
        MAR_1 - timedelta(days=1),
        [
            _subscription(
                shop, prices[i % 3], statuses[i % 4], customer=customer, canceled_at=MAR_30 if i % 4 == 3 else None
            )
            for i in range(count)
        ],
    )
    _create_at(
        MAR_30,
        [
            _invoice(sub, IS.OPEN if i % 2 else IS.UNCOLLECTIBLE, 100, attempt_count=1)
            for i, sub in enumerate(subscriptions)
        ],
    )
    disputed = Payment.objects.filter(client=shop).order_by("id")[: count // 2]
    _disputes_at(MAR_30, [(payment, ("won", "lost", "needs_response")[i % 3]) for i, payment in enumerate(disputed)])
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
        data = dashboard_data(days=30)
    assert data.payment_count == count
    assert data.subscriptions is not None
    assert data.subscriptions.active_count == count - count // 4
    assert data.subscriptions.failed_invoice_count == count
    assert data.disputes is not None
    assert data.disputes.open_count + data.disputes.won_count + data.disputes.lost_count == count // 2
    return len(queries)


def test_dashboard_data_query_count_does_not_grow_with_payments_or_subscriptions(shop):
    # 7 counts, the payments and refunds aggregates, one over subscriptions with their prices, one over invoices,
    # one over disputes
    assert _queries_for(shop, 10) == _queries_for(shop, 1000) == 12


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


def _disputes_at(at: datetime, made: list[tuple[Payment, str]], **extra) -> list[Dispute]:
    """Disputes of these payments in these statuses, opened (and, when closed, decided) at `at`."""
    disputes = _create_at(
        at,
        [
            Dispute(
                client=payment.client,
                payment=payment,
                amount=extra.get("amount", payment.amount),
                currency=payment.currency,
                status=status,
                evidence_due_by=extra.get("evidence_due_by", at + timedelta(days=7)),
                gateway_name="simulator",
                gateway_reference=f"du_dash_{next(_refs)}",
            )
            for payment, status in made
        ],
    )
    _create_at(
        at,
        [
            DisputeStatusChange(dispute=dispute, from_status="", to_status=dispute.status, source="webhook")
            for dispute in disputes
        ],
    )
    return disputes


def _price(unit_amount: int, currency: str, interval: str, interval_count: int = 1) -> Price:
    ref = next(_refs)
    product = Product.objects.create(gateway="simulator", reference=f"prod_dash_{ref}", name=f"Plan {ref}")
    return Price.objects.create(
        gateway="simulator",
        reference=f"price_dash_{ref}",
        product=product,
        unit_amount=unit_amount,
        currency=currency,
        interval=interval,
        interval_count=interval_count,
    )


def _subscription(
    client: User, price: Price, status: str, *, quantity: int = 1, customer: Customer | None = None, **extra
) -> Subscription:
    """An unsaved subscription (of a new customer unless given one), for `_create_at` to insert."""
    ref = next(_refs)
    customer = customer or Customer.objects.create(client=client, customer_id=f"cus_dash_sub_{ref}")
    return Subscription(
        client=client,
        customer=customer,
        price=price,
        quantity=quantity,
        status=status,
        current_period_start=MAR_1,
        current_period_end=MAR_1 + timedelta(days=31),
        gateway="simulator",
        gateway_reference=f"sub_dash_{ref}",
        **extra,
    )


def _invoice(subscription: Subscription, status: str, amount_remaining: int, **extra) -> Invoice:
    return Invoice(
        client=subscription.client,
        subscription=subscription,
        customer=subscription.customer,
        status=status,
        currency=subscription.price.currency,
        amount_due=amount_remaining,
        amount_remaining=amount_remaining,
        gateway="simulator",
        gateway_reference=f"in_dash_{next(_refs)}",
        **extra,
    )


@pytest.fixture
def subscribed(shop) -> list[Subscription]:
    """Subscriptions in usd, jpy and kwd on monthly, yearly, weekly and daily prices, in every status."""
    usd_month = _price(900, "usd", "month")
    usd_year = _price(29_000, "usd", "year")
    usd_fortnight = _price(1000, "usd", "week", interval_count=2)
    usd_day = _price(100, "usd", "day")
    jpy_quarter = _price(1000, "jpy", "month", interval_count=3)
    kwd_year = _price(1000, "kwd", "year")
    before = _create_at(
        MAR_1 - timedelta(days=40),
        [
            _subscription(shop, usd_month, SS.ACTIVE, quantity=2),  # 1800 a month
            _subscription(shop, usd_year, SS.ACTIVE),  # 29000 / 12 = 2416.67
            _subscription(shop, usd_fortnight, SS.PAST_DUE),  # 1000 × 52 / 12 / 2 = 2166.67
            _subscription(shop, jpy_quarter, SS.ACTIVE),  # 1000 / 3 = 333.33
            _subscription(shop, kwd_year, SS.ACTIVE),  # 1000 / 12 = 83.33
            _subscription(shop, usd_month, SS.TRIALING),  # no revenue yet
            _subscription(shop, usd_month, SS.UNPAID),  # billed nothing
            _subscription(shop, usd_month, SS.CANCELED, canceled_at=MAR_1 - timedelta(seconds=1)),  # last month
            _subscription(shop, usd_month, SS.CANCELED, canceled_at=MAR_1),  # churned this month
            _subscription(shop, usd_month, SS.INCOMPLETE_EXPIRED),
        ],
    )
    during = _create_at(
        MAR_1 + timedelta(days=2),
        [
            _subscription(shop, usd_day, SS.ACTIVE, quantity=3),  # 300 × 365 / 12 = 9125
            _subscription(shop, usd_month, SS.INCOMPLETE),
            _subscription(shop, jpy_quarter, SS.CANCELED, canceled_at=MAR_30),  # churned, not in force on the 1st
        ],
    )
    return before + during


def test_subscription_figures_mrr_normalises_intervals_per_currency_and_rounds_the_sum_down(subscribed):
    # when
    figures = subscription_figures(now=NOW)

    # then usd is 1800 + 2416.67 + 2166.67 + 9125 = 15508.33 (rounding each down would give 15507)
    assert figures.month_start == MAR_1
    assert [(m.currency, m.amount, m.subscription_count, m.amount_display) for m in figures.mrr] == [
        ("jpy", 333, 1, "¥333"),
        ("kwd", 83, 1, "0.083 KD"),
        ("usd", 15508, 4, "$155.08"),
    ]


def test_subscription_figures_count_subscriptions_in_force_and_this_months_churn(subscribed):
    figures = subscription_figures(now=NOW)

    assert (figures.active_count, figures.trialing_count, figures.past_due_count) == (7, 1, 1)
    assert figures.canceled_this_month == 2
    # in force on the 1st: the 8 created before it that were neither incomplete(-expired) nor canceled by then
    assert (figures.in_force_at_month_start, figures.canceled_of_month_start) == (8, 1)
    assert figures.churn_rate == 12.5


def test_subscription_figures_churn_rate_is_none_when_nothing_was_in_force_on_the_first(shop):
    price = _price(900, "usd", "month")
    _create_at(MAR_30, [_subscription(shop, price, SS.CANCELED, canceled_at=MAR_30)])

    figures = subscription_figures(now=NOW)

    assert (figures.canceled_this_month, figures.in_force_at_month_start, figures.churn_rate) == (1, 0, None)
    assert figures.mrr == []


def test_subscription_figures_sum_failed_invoices_per_currency(subscribed):
    # given invoices open after a failed attempt, uncollectible this month and last, and some that did not fail
    usd, jpy = subscribed[0], subscribed[3]
    _create_at(MAR_1 - timedelta(seconds=1), [_invoice(usd, IS.UNCOLLECTIBLE, 5000, attempt_count=4)])
    _create_at(
        MAR_30,
        [
            _invoice(usd, IS.OPEN, 900, attempt_count=1),
            _invoice(usd, IS.OPEN, 1800, attempt_count=2),
            _invoice(usd, IS.OPEN, 700),  # not attempted yet
            _invoice(usd, IS.PAID, 0, attempt_count=2),
            _invoice(usd, IS.UNCOLLECTIBLE, 2900, attempt_count=4),
            _invoice(jpy, IS.UNCOLLECTIBLE, 1000, attempt_count=4),
            _invoice(jpy, IS.VOID, 1000, attempt_count=1),
        ],
    )

    # when
    figures = subscription_figures(now=NOW)

    # then
    assert [
        (f.currency, f.open_count, f.open_amount, f.uncollectible_count, f.uncollectible_amount, f.amount_display)
        for f in figures.failed_invoices
    ] == [("jpy", 0, 0, 1, 1000, "¥1,000"), ("usd", 2, 2700, 1, 2900, "$56.00")]
    assert figures.failed_invoice_count == 4


def test_subscription_figures_month_starts_on_the_first_in_utc(shop):
    # given a subscription canceled at 23:30 UTC on the last day of February
    price = _price(900, "usd", "month")
    _create_at(
        MAR_1 - timedelta(days=40),
        [_subscription(shop, price, SS.CANCELED, canceled_at=MAR_1 - timedelta(minutes=30))],
    )

    # when it is 00:15 on 1 March in UTC, still 28 February in New York
    figures = subscription_figures(now=datetime(2025, 2, 28, 19, 15, tzinfo=ZoneInfo("America/New_York")))

    # then it churned last month
    assert (figures.month_start, figures.canceled_this_month) == (MAR_1, 0)


@pytest.mark.django_db
def test_admin_index_shows_mrr_subscriptions_churn_and_failed_invoices(admin_client, shop):
    # given an active yearly subscription, one canceled this month and an invoice whose payment failed
    with time_machine.travel(NOW, tick=False):
        yearly = _price(29_000, "usd", "year")
        monthly = _price(900, "usd", "month")
        active, _ = _create_at(
            MAR_1 - timedelta(days=3),
            [_subscription(shop, yearly, SS.ACTIVE), _subscription(shop, monthly, SS.CANCELED, canceled_at=MAR_30)],
        )
        _create_at(MAR_30, [_invoice(active, IS.OPEN, 29_000, attempt_count=1)])

        # when
        body = admin_client.get("/admin/").content.decode()

    # then
    assert 'id="dash-mrr-usd">$24.16</span>' in body
    assert "1 active or past due" in body
    assert 'href="/admin/subscriptions/subscription/">1</a>' in body
    assert "50.0 % of 2 in force on the 1st" in body
    assert 'href="/admin/subscriptions/invoice/?status__exact=open">1</a>' in body
    assert "$290.00: 1 open after a failed attempt, 0 uncollectible" in body


@pytest.mark.django_db
def test_admin_index_hides_subscription_revenue_from_staff_who_cannot_view_payments(client, shop):
    # given a subscription bringing revenue and a staff member who may only view approval requests
    _create_at(NOW, [_subscription(shop, _price(900, "usd", "month"), SS.ACTIVE)])
    client.force_login(StaffUserFactory(permissions=["audit.view_approvalrequest"]))

    body = client.get("/admin/").content.decode()

    assert 'id="dash-approvals"' in body
    assert 'id="dash-subscriptions"' not in body
    assert "$9.00" not in body


# --- disputes ------------------------------------------------------------------------------------------------
def _paid(shop: User, amount: int, currency: str = "usd") -> Payment:
    return _create_at(MAR_2, [_payment(shop, amount, currency, S.SUCCEEDED)])[0]


def test_dispute_figures_open_due_soon_win_rate_and_disputed_amounts_per_currency(shop):
    # given: open disputes (one due within 48 h, one due within 48 h but submitted, one due later), decisions in
    # the last 90 days and one before
    _disputes_at(
        NOW - timedelta(days=2), [(_paid(shop, 1000), "needs_response")], evidence_due_by=NOW + timedelta(hours=47)
    )
    submitted = _disputes_at(NOW - timedelta(days=2), [(_paid(shop, 2000), "under_review")])[0]
    Dispute.objects.filter(pk=submitted.pk).update(evidence_due_by=NOW + timedelta(hours=20), submission_count=1)
    _disputes_at(NOW - timedelta(days=1), [(_paid(shop, 500, "jpy"), "warning_needs_response")])
    _disputes_at(NOW - timedelta(days=10), [(_paid(shop, 300), "won"), (_paid(shop, 400), "won")])
    _disputes_at(NOW - timedelta(days=80), [(_paid(shop, 700), "lost"), (_paid(shop, 900, "kwd"), "lost")])
    _disputes_at(NOW - timedelta(days=100), [(_paid(shop, 5000), "lost"), (_paid(shop, 6000), "won")])
    _disputes_at(NOW - timedelta(days=5), [(_paid(shop, 800), "warning_closed")])

    # when
    with time_machine.travel(NOW, tick=False):
        data = dashboard_data(days=30)

    # then
    figures = data.disputes
    assert figures is not None
    assert (figures.open_count, figures.due_soon_count, figures.won_count, figures.lost_count) == (3, 1, 2, 2)
    assert figures.win_rate == 50.0
    assert [(d.currency, d.amount, d.amount_display) for d in figures.disputed] == [
        ("jpy", 500, "¥500"),
        ("kwd", 900, "0.900 KD"),
        ("usd", 1000 + 2000 + 700, "$37.00"),
    ]


def test_dispute_win_rate_is_none_when_nothing_was_decided_in_90_days(shop):
    _disputes_at(NOW - timedelta(days=1), [(_paid(shop, 1000), "needs_response")])
    _disputes_at(NOW - timedelta(days=91), [(_paid(shop, 1000), "won")])

    with time_machine.travel(NOW, tick=False):
        figures = dashboard_data(days=30).disputes

    assert figures is not None
    assert (figures.open_count, figures.won_count, figures.lost_count, figures.win_rate) == (1, 0, 0, None)


def test_net_volume_is_captured_less_refunds_and_disputes_lost_in_the_window(seeded, shop):
    # given (seeded: usd 3000 captured and 400 refunded, kwd 4000 and 1500, jpy 500): a usd dispute lost in the
    # window, a kwd one lost before it, a usd one won and a jpy one still open
    lost_usd, won_usd, open_jpy = (_paid(shop, 250), _paid(shop, 100), _paid(shop, 500, "jpy"))
    _disputes_at(MAR_30, [(lost_usd, "lost"), (won_usd, "won"), (open_jpy, "needs_response")])
    _disputes_at(MAR_2 - timedelta(days=1), [(_paid(shop, 1000, "kwd"), "lost")])

    with time_machine.travel(NOW, tick=False):
        data = dashboard_data(days=30)

    # then (the disputed payments are captured in the window too: usd +350, jpy +500)
    assert [(n.currency, n.captured, n.refunded, n.disputes_lost, n.net) for n in data.net_volumes] == [
        ("jpy", 1000, 0, 0, 1000),
        ("kwd", 4000 + 1000, 1500, 0, 3500),
        ("usd", 3350, 400, 250, 2700),
    ]


@pytest.mark.django_db
def test_admin_index_shows_dispute_cards_and_the_net_volume(admin_client, shop):
    # given a payment captured today, its dispute lost, and another's open and due tomorrow
    with time_machine.travel(NOW, tick=False):
        lost, disputed = Payment.objects.bulk_create(
            [_payment(shop, 1999, "usd", S.SUCCEEDED), _payment(shop, 1000, "usd", S.SUCCEEDED)]
        )
        _disputes_at(NOW - timedelta(hours=1), [(lost, "lost")])
        _disputes_at(NOW - timedelta(hours=1), [(disputed, "needs_response")], evidence_due_by=NOW + timedelta(days=1))

        # when
        body = admin_client.get("/admin/").content.decode()

    # then
    assert 'id="dash-net-usd">$10.00</span>' in body  # 29.99 captured less 19.99 lost
    assert 'id="dash-open-disputes"' in body
    assert "0 won of 1 decided in 90 days" in body
    assert 'id="dash-disputed-usd">$29.99</span>' in body
    due = body.split('id="dash-disputes-due"')[1].split("</div>")[0]
    assert '<span class="dash-value">1</span>' in due


@pytest.mark.django_db
def test_admin_index_hides_disputes_from_staff_who_cannot_view_payments(client, shop):
    _disputes_at(NOW, [(_paid(shop, 1999), "needs_response")])
    client.force_login(StaffUserFactory(permissions=["audit.view_approvalrequest"]))

    body = client.get("/admin/").content.decode()

    assert 'id="dash-approvals"' in body
    assert 'id="dash-disputes"' not in body
    assert 'id="dash-net"' not in body
