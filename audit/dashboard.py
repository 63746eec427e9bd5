"""The admin index dashboard: one selector returning plain data for the last N days, and small SVG chart builders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from audit.models import ApprovalRequest, ApprovalStatus, Discrepancy, DiscrepancyState
from payments.models import Payment
from payments.money import UnknownCurrency, format_amount
from payments.recovery import payments_stuck
from payments.risk.models import ReviewState, RiskAssessment
from payments.states import CAPTURED, PaymentStatus
from refunds.models import Refund
from refunds.recovery import refunds_stuck
from refunds.states import RefundStatus

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
    open_reviews = RiskAssessment.objects.filter(review_state=ReviewState.PENDING).count()
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


# --- SVG ---------------------------------------------------------------------------------------------------------
# Drawn on the server so the admin needs no JavaScript or asset from the internet. Colours come from CSS classes
# (the admin's own variables), so the charts follow its light and dark themes.

_WIDTH = 640
_HEIGHT = 150
_TOP = 16
_BOTTOM = 22
_LEFT = 4


def _svg(label: str, body: list[str], width: int = _WIDTH, height: int = _HEIGHT) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated text below goes through escape()
        f'<svg class="dash-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _axis(days: Sequence[date], plot_height: int) -> list[str]:
    """Baseline and the first, middle and last dates under it."""
    y = _TOP + plot_height
    parts = [f'<line class="dash-axis" x1="{_LEFT}" y1="{y}" x2="{_WIDTH}" y2="{y}"/>']
    if not days:
        return parts
    slot = (_WIDTH - _LEFT) / len(days)
    for position, anchor in ((0, "start"), (len(days) // 2, "middle"), (len(days) - 1, "end")):
        x = _LEFT + slot * position + (slot / 2 if anchor == "middle" else slot if anchor == "end" else 0)
        label = days[position].strftime("%d %b")
        parts.append(f'<text class="dash-label" x="{x:.1f}" y="{y + 15}" text-anchor="{anchor}">{escape(label)}</text>')
    return parts


def svg_bar_chart(
    values: Sequence[int], days: Sequence[date], *, label: str, format_value: Callable[[int], str]
) -> SafeString:
    """Bars of `values` (one per day), scaled to the largest, each with a tooltip of its day and formatted value."""
    plot_height = _HEIGHT - _TOP - _BOTTOM
    peak = max(values, default=0)
    slot = (_WIDTH - _LEFT) / max(len(values), 1)
    parts = [
        f'<line class="dash-grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH}" y2="{_TOP}"/>',
        f'<text class="dash-label" x="{_WIDTH}" y="{_TOP - 4}" text-anchor="end">'
        f"max {escape(format_value(peak))}/day</text>",
    ]
    for position, (value, day) in enumerate(zip(values, days, strict=True)):
        height = round(plot_height * value / peak, 1) if peak else 0
        x = _LEFT + slot * position + slot * 0.15
        parts.append(
            f'<rect class="dash-bar" x="{x:.1f}" y="{_TOP + plot_height - height:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{height}"><title>{day.isoformat()}: {escape(format_value(value))}</title></rect>'
        )
    return _svg(label, parts + _axis(days, plot_height))


def svg_rate_chart(rates: Sequence[float | None], days: Sequence[date], *, label: str) -> SafeString:
    """Success rate per day as bars from 0 to 100 %; a day with no outcome gets a dot on the baseline."""
    plot_height = _HEIGHT - _TOP - _BOTTOM
    slot = (_WIDTH - _LEFT) / max(len(rates), 1)
    middle = _TOP + plot_height / 2
    parts = [
        f'<line class="dash-grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH}" y2="{_TOP}"/>',
        f'<line class="dash-grid" x1="{_LEFT}" y1="{middle}" x2="{_WIDTH}" y2="{middle}"/>',
        f'<text class="dash-label" x="{_WIDTH}" y="{_TOP - 4}" text-anchor="end">100 %</text>',
    ]
    for position, (rate, day) in enumerate(zip(rates, days, strict=True)):
        x = _LEFT + slot * position + slot * 0.15
        if rate is None:
            parts.append(
                f'<circle class="dash-empty" cx="{x + slot * 0.35:.1f}" cy="{_TOP + plot_height - 2}" r="1.5">'
                f"<title>{day.isoformat()}: no outcome</title></circle>"
            )
            continue
        height = round(plot_height * rate / 100, 1)
        parts.append(
            f'<rect class="dash-bar dash-rate" x="{x:.1f}" y="{_TOP + plot_height - height:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{height}"><title>{day.isoformat()}: {rate} %</title></rect>'
        )
    return _svg(label, parts + _axis(days, plot_height))
