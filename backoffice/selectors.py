"""The admin index dashboard's figures: one selector returning plain data for the last N days."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from math import floor

from django.db.models import BigIntegerField, Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from audit.models import ApprovalRequest, ApprovalStatus
from disputes.deadlines import awaiting_evidence
from disputes.models import Dispute, DisputeStatusChange
from disputes.states import OPEN as DISPUTE_OPEN
from disputes.states import DisputeStatus
from payments.models import Payment
from payments.money import UnknownCurrency, format_amount
from payments.selectors import payments_stuck
from payments.states import CAPTURED, PaymentStatus
from reconciliation.models import Discrepancy, DiscrepancyState
from refunds.models import Refund
from refunds.selectors import refunds_stuck
from refunds.states import RefundStatus
from risk.models import PaymentReview
from subscriptions.models import Invoice, Subscription
from subscriptions.states import InvoiceStatus, SubscriptionStatus

# A payment has an outcome once it was captured (even if refunded since), failed or was canceled;
# the success rate is captured / outcome, so payments still in flight do not drag it down.
_OUTCOME = CAPTURED | {PaymentStatus.FAILED, PaymentStatus.CANCELED}

# Subscriptions that bring revenue (MRR): active, and past due while the gateway retries the invoice. A trial
# brings none yet; an unpaid one is left unpaid by the gateway and bills nothing.
_BILLING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
# Subscriptions in force: the billing ones and those in a trial.
_IN_FORCE = (SubscriptionStatus.TRIALING, *_BILLING)
# Months per interval, as twelfths: a year is 1/12 of a month's revenue a month, a week 52/12, a day 365/12.
_TWELFTHS_PER_INTERVAL = {"month": 12, "year": 1, "week": 52, "day": 365}


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


@dataclass(frozen=True)
class CurrencyMrr:
    """Monthly recurring revenue of one currency (minor units, rounded down) and the subscriptions it comes from."""

    currency: str
    amount: int
    subscription_count: int

    @property
    def amount_display(self) -> str:
        return money(self.amount, self.currency)


@dataclass(frozen=True)
class FailedInvoices:
    """One currency's invoices whose payment failed: open after a failed attempt, and uncollectible this month.

    Amounts are what remains to be paid, in minor units.
    """

    currency: str
    open_count: int
    open_amount: int
    uncollectible_count: int
    uncollectible_amount: int

    @property
    def count(self) -> int:
        return self.open_count + self.uncollectible_count

    @property
    def amount(self) -> int:
        return self.open_amount + self.uncollectible_amount

    @property
    def amount_display(self) -> str:
        return money(self.amount, self.currency)


@dataclass(frozen=True)
class SubscriptionFigures:
    """MRR, subscriptions in force and this month's churn (the month starts on the 1st, 00:00 UTC)."""

    month_start: datetime
    mrr: list[CurrencyMrr] = field(default_factory=list)
    active_count: int = 0  # trialing, active and past due
    trialing_count: int = 0
    past_due_count: int = 0
    canceled_this_month: int = 0
    in_force_at_month_start: int = 0
    canceled_of_month_start: int = 0  # canceled this month among those in force on the 1st
    failed_invoices: list[FailedInvoices] = field(default_factory=list)

    @property
    def churn_rate(self) -> float | None:
        """Canceled this month of those in force on the 1st, in percent with one decimal (None: none were)."""
        return rate_percent(self.canceled_of_month_start, self.in_force_at_month_start)

    @property
    def failed_invoice_count(self) -> int:
        return sum(failed.count for failed in self.failed_invoices)


@dataclass(frozen=True)
class CurrencyAmount:
    currency: str
    amount: int  # minor units

    @property
    def amount_display(self) -> str:
        return money(self.amount, self.currency)


@dataclass(frozen=True)
class DisputeFigures:
    """Open disputes, those whose evidence is due within 48 h, the win rate and what disputes hold, per currency.

    Won and lost count the disputes closed (their closing status change) in the last `rate_days` days; the
    disputed amount is that of open disputes and of those lost in the same days; `lost_in_window` is what disputes
    lost in the dashboard's window take from its net volume.
    """

    rate_days: int
    open_count: int = 0
    due_soon_count: int = 0  # awaiting evidence, due within 48 h
    won_count: int = 0
    lost_count: int = 0
    disputed: list[CurrencyAmount] = field(default_factory=list)
    lost_in_window: dict[str, int] = field(default_factory=dict)

    @property
    def win_rate(self) -> float | None:
        """Won of those decided (won or lost) in the last `rate_days` days, in percent; None when none were."""
        return rate_percent(self.won_count, self.won_count + self.lost_count)


@dataclass(frozen=True)
class CurrencyNet:
    """A currency's net volume in the window: captured, less succeeded refunds and disputes lost (minor units)."""

    currency: str
    captured: int
    refunded: int
    disputes_lost: int

    @property
    def net(self) -> int:
        return self.captured - self.refunded - self.disputes_lost

    @property
    def net_display(self) -> str:
        return money(self.net, self.currency)


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
    subscriptions: SubscriptionFigures | None = None  # None without money
    disputes: DisputeFigures | None = None  # None without money

    @property
    def success_rate(self) -> float | None:
        return rate_percent(self.captured_count, self.outcome_count)

    @property
    def refund_count(self) -> int:
        return sum(totals.count for totals in self.refunds)

    @property
    def net_volumes(self) -> list[CurrencyNet]:
        """Per currency: captured volume less succeeded refunds and disputes lost in the window."""
        captured = {volume.currency: volume.total for volume in self.volumes}
        refunded = {totals.currency: totals.volume for totals in self.refunds}
        lost = self.disputes.lost_in_window if self.disputes else {}
        return [
            CurrencyNet(
                currency=code,
                captured=captured.get(code, 0),
                refunded=refunded.get(code, 0),
                disputes_lost=lost.get(code, 0),
            )
            for code in sorted(set(captured) | set(refunded) | set(lost))
        ]

    @property
    def daily_rates(self) -> list[float | None]:
        return [rate_percent(c, o) for c, o in zip(self.daily_captured, self.daily_outcome, strict=True)]


def dashboard_data(*, days: int = 30, now: datetime | None = None, include_money: bool = True) -> DashboardData:
    """Figures for the last `days` days (today included, days in the current time zone).

    Five aggregate queries (payments grouped by day and currency, refunds grouped by currency, subscriptions
    with their prices, failed invoices by currency, disputes by currency) and a few counts, whatever the number of
    rows; `include_money=False` skips the five aggregates.
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
        subscriptions=subscription_figures(now=now),
        disputes=dispute_figures(now=now, window_start=window_start, window_end=window_end),
    )


DISPUTE_RATE_DAYS = 90
_DISPUTE_DUE_SOON = timedelta(hours=48)
_DISPUTE_DECIDED = (DisputeStatus.WON, DisputeStatus.LOST)


def dispute_figures(
    *, now: datetime, window_start: datetime, window_end: datetime, rate_days: int = DISPUTE_RATE_DAYS
) -> DisputeFigures:
    """Open disputes, those due within 48 h without evidence, the win rate over `rate_days` and the amounts held,
    in one aggregate query grouped by currency.

    A dispute's closing time is its status change into won or lost (a closed status is never left: one such row).
    """
    since = now - timedelta(days=rate_days)
    closed_at = Subquery(
        DisputeStatusChange.objects.filter(dispute=OuterRef("pk"), to_status__in=_DISPUTE_DECIDED)
        .order_by("created_at")
        .values("created_at")[:1]
    )
    is_open = Q(status__in=DISPUTE_OPEN)
    due_soon = awaiting_evidence(now=now) & Q(evidence_due_by__lte=now + _DISPUTE_DUE_SOON)
    won = Q(status=DisputeStatus.WON, closed_at__gte=since)
    lost = Q(status=DisputeStatus.LOST, closed_at__gte=since)
    lost_in_window = Q(status=DisputeStatus.LOST, closed_at__gte=window_start, closed_at__lt=window_end)
    rows = (
        Dispute.objects.annotate(closed_at=closed_at)
        .filter(is_open | Q(status__in=_DISPUTE_DECIDED, closed_at__gte=min(since, window_start)))
        .values("currency")
        .annotate(
            open_count=Count("id", filter=is_open),
            due_soon_count=Count("id", filter=due_soon),
            won_count=Count("id", filter=won),
            lost_count=Count("id", filter=lost),
            disputed=Coalesce(Sum("amount", filter=is_open | lost), 0),
            lost_in_window=Coalesce(Sum("amount", filter=lost_in_window), 0),
        )
        .order_by("currency")
    )
    totals = dict.fromkeys(("open_count", "due_soon_count", "won_count", "lost_count"), 0)
    disputed: list[CurrencyAmount] = []
    lost_amounts: dict[str, int] = {}
    for row in rows:
        for name in totals:
            totals[name] += row[name]
        if row["disputed"]:
            disputed.append(CurrencyAmount(currency=row["currency"], amount=row["disputed"]))
        if row["lost_in_window"]:
            lost_amounts[row["currency"]] = row["lost_in_window"]
    return DisputeFigures(rate_days=rate_days, disputed=disputed, lost_in_window=lost_amounts, **totals)


def month_start_utc(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def subscription_figures(*, now: datetime) -> SubscriptionFigures:
    """MRR per currency, subscriptions in force, churn and failed invoices, in two aggregate queries.

    MRR is the sum over active and past-due subscriptions of unit amount × quantity brought to a month
    (a year's /12, a week's ×52/12, a day's ×365/12, each divided by the interval count), rounded down once per
    currency. Churn counts subscriptions canceled since the 1st (the gateway's `canceled_at`, which for a cancel at
    period end is the day it was asked); its rate is over those in force on the 1st: created before it, neither
    incomplete nor canceled before it.
    """
    start = month_start_utc(now)
    canceled_this_month = Q(status=SubscriptionStatus.CANCELED, canceled_at__gte=start)
    before_month = Q(created_at__lt=start)
    billing = Q(status__in=_BILLING)
    # One row per currency and billing interval, so the month's fraction is exact: bounded by the catalog's
    # variety, not by the number of subscriptions.
    rows = (
        Subscription.objects.filter(Q(status__in=(*_IN_FORCE, SubscriptionStatus.UNPAID)) | canceled_this_month)
        .values("price__currency", "price__interval", "price__interval_count")
        .annotate(
            in_force=Count("id", filter=Q(status__in=_IN_FORCE)),
            trialing=Count("id", filter=Q(status=SubscriptionStatus.TRIALING)),
            past_due=Count("id", filter=Q(status=SubscriptionStatus.PAST_DUE)),
            billing=Count("id", filter=billing),
            billed=Coalesce(
                Sum(F("price__unit_amount") * F("quantity"), filter=billing, output_field=BigIntegerField()), 0
            ),
            canceled=Count("id", filter=canceled_this_month),
            at_start=Count("id", filter=before_month),
            canceled_of_start=Count("id", filter=canceled_this_month & before_month),
        )
        .order_by()
    )
    mrr: dict[str, Fraction] = {}
    billing_count: dict[str, int] = {}
    totals = dict.fromkeys(("in_force", "trialing", "past_due", "canceled", "at_start", "canceled_of_start"), 0)
    for row in rows:
        for name in totals:
            totals[name] += row[name]
        if not row["billing"]:
            continue
        currency = row["price__currency"]
        twelfths = _TWELFTHS_PER_INTERVAL[row["price__interval"]]
        monthly = Fraction(row["billed"] * twelfths, 12 * row["price__interval_count"])
        mrr[currency] = mrr.get(currency, Fraction(0)) + monthly
        billing_count[currency] = billing_count.get(currency, 0) + row["billing"]

    open_failed = Q(status=InvoiceStatus.OPEN, attempt_count__gt=0)
    # An invoice has no "marked uncollectible at"; its last change is when it became so (only paid or void follow).
    uncollectible = Q(status=InvoiceStatus.UNCOLLECTIBLE, updated_at__gte=start)
    invoice_rows = (
        Invoice.objects.filter(open_failed | uncollectible)
        .values("currency")
        .annotate(
            open_count=Count("id", filter=open_failed),
            open_amount=Coalesce(Sum("amount_remaining", filter=open_failed), 0),
            uncollectible_count=Count("id", filter=uncollectible),
            uncollectible_amount=Coalesce(Sum("amount_remaining", filter=uncollectible), 0),
        )
        .order_by("currency")
    )
    return SubscriptionFigures(
        month_start=start,
        mrr=[
            CurrencyMrr(currency=code, amount=floor(amount), subscription_count=billing_count[code])
            for code, amount in sorted(mrr.items())
        ],
        active_count=totals["in_force"],
        trialing_count=totals["trialing"],
        past_due_count=totals["past_due"],
        canceled_this_month=totals["canceled"],
        in_force_at_month_start=totals["at_start"],
        canceled_of_month_start=totals["canceled_of_start"],
        failed_invoices=[FailedInvoices(**row) for row in invoice_rows],
    )
