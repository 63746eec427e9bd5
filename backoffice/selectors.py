"""The admin index dashboard's figures: one selector returning plain data for the last N days."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from audit.models import ApprovalRequest, ApprovalStatus
from payments.models import Payment
from payments.money import UnknownCurrency, format_amount
from payments.selectors import payments_stuck
from payments.states import CAPTURED, PaymentStatus
from reconciliation.models import Discrepancy, DiscrepancyState
from refunds.models import Refund
from refunds.selectors import refunds_stuck
from refunds.states import RefundStatus
from risk.models import PaymentReview

# A payment has an outcome once it was captured (even if refunded since), failed or was canceled;
# the success rate is captured / outcome, so payments still in flight do not drag it down.
_OUTCOME = CAPTURED | {PaymentStatus.FAILED, PaymentStatus.CANCELED}


def money(amount: int, currency: str) -> str:
    """`format_amount`, tolerant of a currency missing from the table (a dashboard must still render)."""
    try:
        return format_amount(amount, currency)
    except UnknownCurrency:
        return f"{amount} {currency.upper()} (minor units)"


def money_formatter(currency: str) -> Callable[[int], str]:
    return lambda amount: money(amount, currency)


@dataclass(frozen=True)
class CurrencyVolume:
    """Captured volume of one currency: per day (aligned with `DashboardData.days`) and in total, minor units."""

    currency: str
    daily: list[int]
    total: int
    captured_count: int

    @property
    def total_display(self) -> str:
        return money(self.total, self.currency)


@dataclass(frozen=True)
class RefundTotals:
    currency: str
    count: int
    succeeded_count: int
    volume: int  # succeeded refunds, minor units

    @property
    def volume_display(self) -> str:
        return money(self.volume, self.currency)


@dataclass(frozen=True)
class StuckCounts:
    payments_needing_attention: int
    payments_stuck: int
    refunds_needing_attention: int
    refunds_stuck: int

    @property
    def total(self) -> int:
        return (
            self.payments_needing_attention + self.payments_stuck + self.refunds_needing_attention + self.refunds_stuck
        )


def rate_percent(succeeded: int, outcome: int) -> float | None:
    """Success rate in percent with one decimal, or None when nothing reached an outcome."""
    return round(100 * succeeded / outcome, 1) if outcome else None


@dataclass(frozen=True)
class DashboardData:
    start: date
    end: date  # inclusive
    days: list[date]
    include_money: bool
    payment_count: int = 0
    captured_count: int = 0
    outcome_count: int = 0
    daily_captured: list[int] = field(default_factory=list)
    daily_outcome: list[int] = field(default_factory=list)
    volumes: list[CurrencyVolume] = field(default_factory=list)
    refunds: list[RefundTotals] = field(default_factory=list)
    open_reviews: int = 0
    pending_approvals: int = 0
    open_discrepancies: int = 0
    stuck: StuckCounts = field(default_factory=lambda: StuckCounts(0, 0, 0, 0))

    @property
    def success_rate(self) -> float | None:
        return rate_percent(self.captured_count, self.outcome_count)

    @property
    def refund_count(self) -> int:
        return sum(totals.count for totals in self.refunds)

    @property
    def daily_rates(self) -> list[float | None]:
        return [rate_percent(c, o) for c, o in zip(self.daily_captured, self.daily_outcome, strict=True)]


def dashboard_data(*, days: int = 30, now: datetime | None = None, include_money: bool = True) -> DashboardData:
    """Figures for the last `days` days (today included, days in the current time zone).

    Two aggregate queries (payments grouped by day and currency, refunds grouped by currency) and a few counts,
    whatever the number of rows; `include_money=False` skips the two aggregates.
    """
    now = now or timezone.now()
    end = timezone.localdate(now)
    start = end - timedelta(days=days - 1)
    day_list = [start + timedelta(days=offset) for offset in range(days)]
    window_start = timezone.make_aware(datetime.combine(start, time.min))
    window_end = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    in_window = Q(created_at__gte=window_start, created_at__lt=window_end)

    pending_approvals = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()
    open_discrepancies = Discrepancy.objects.filter(state=DiscrepancyState.OPEN).count()
    open_reviews = PaymentReview.objects.count()  # the review queue: payments whose review hold is pending
    stuck = StuckCounts(
        payments_needing_attention=Payment.objects.filter(needs_attention=True).count(),
        payments_stuck=payments_stuck().count(),
        refunds_needing_attention=Refund.objects.filter(needs_attention=True).count(),
        refunds_stuck=refunds_stuck().count(),
    )
    if not include_money:
        return DashboardData(
            start=start,
            end=end,
            days=day_list,
            include_money=False,
            pending_approvals=pending_approvals,
            open_reviews=open_reviews,
            open_discrepancies=open_discrepancies,
            stuck=stuck,
        )

    index = {day: position for position, day in enumerate(day_list)}
    daily_captured = [0] * days
    daily_outcome = [0] * days
    by_currency: dict[str, list[int]] = {}
    captured_by_currency: dict[str, int] = {}
    payment_count = 0
    rows = (
        Payment.objects.filter(in_window)
        .annotate(day=TruncDate("created_at"))
        .values("day", "currency")
        .annotate(
            count=Count("id"),
            captured=Count("id", filter=Q(status__in=CAPTURED)),
            outcome=Count("id", filter=Q(status__in=_OUTCOME)),
            volume=Coalesce(Sum("amount_received", filter=Q(status__in=CAPTURED)), 0),
        )
        .order_by("day", "currency")
    )
    for row in rows:
        position = index[row["day"]]
        payment_count += row["count"]
        daily_captured[position] += row["captured"]
        daily_outcome[position] += row["outcome"]
        if row["captured"]:
            by_currency.setdefault(row["currency"], [0] * days)[position] += row["volume"]
            captured_by_currency[row["currency"]] = captured_by_currency.get(row["currency"], 0) + row["captured"]

    refund_rows = (
        Refund.objects.filter(in_window)
        .values("currency")
        .annotate(
            count=Count("id"),
            succeeded=Count("id", filter=Q(status=RefundStatus.SUCCEEDED)),
            volume=Coalesce(Sum("amount", filter=Q(status=RefundStatus.SUCCEEDED)), 0),
        )
        .order_by("currency")
    )
    return DashboardData(
        start=start,
        end=end,
        days=day_list,
        include_money=True,
        payment_count=payment_count,
        captured_count=sum(daily_captured),
        outcome_count=sum(daily_outcome),
        daily_captured=daily_captured,
        daily_outcome=daily_outcome,
        volumes=[
            CurrencyVolume(currency=code, daily=daily, total=sum(daily), captured_count=captured_by_currency[code])
            for code, daily in sorted(by_currency.items())
        ],
        refunds=[
            RefundTotals(currency=r["currency"], count=r["count"], succeeded_count=r["succeeded"], volume=r["volume"])
            for r in refund_rows
        ],
        pending_approvals=pending_approvals,
        open_reviews=open_reviews,
        open_discrepancies=open_discrepancies,
        stuck=stuck,
    )
