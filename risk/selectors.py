"""Reads of the risk app for the back office: the review queue with each customer's recent history."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DateTimeField, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments.models import Payment, PaymentStatusChange
from payments.states import PaymentStatus
from refunds.models import Refund
from risk.models import PaymentReview, RiskAssessment
from risk.services import AUTHORIZATION_VALIDITY

HISTORY_WINDOW = timedelta(days=30)
# What the rules count as a decline: the gateway refused it (our own blocks and plain failures are not declines).
DECLINED = Q(status=PaymentStatus.FAILED) & ~Q(failure_code__in=["", "blocked"])


def _count(queryset: QuerySet, group: str) -> Coalesce:
    """COUNT(*) of a correlated subquery, grouped by a column every row shares (one row, or none: 0)."""
    counted = queryset.order_by().values(group).annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def assessments_with_history(queryset: QuerySet, *, now: datetime | None = None) -> QuerySet:
    """Annotate assessments with the customer's last 30 days and when the payment was authorized.

    Every figure is a correlated subquery on an index (customer_id + created_at, the payment's status
    history), so a page of the queue costs one query whatever its length:
    `history_payments` (the customer's other payments at the same API client), `history_declines`,
    `history_refunds` (refunds of those payments) and `authorized_at` (first move to requires_capture).
    """
    since = (now or timezone.now()) - HISTORY_WINDOW
    others = Payment.objects.filter(
        client_id=OuterRef("payment__client_id"),
        customer_id=OuterRef("payment__customer_id"),
        created_at__gte=since,
    ).exclude(pk=OuterRef("payment_id"))
    refunds = Refund.objects.filter(
        payment__client_id=OuterRef("payment__client_id"),
        payment__customer_id=OuterRef("payment__customer_id"),
        created_at__gte=since,
    )
    authorized = (
        PaymentStatusChange.objects.filter(payment_id=OuterRef("payment_id"), to_status=PaymentStatus.REQUIRES_CAPTURE)
        .order_by("created_at")
        .values("created_at")[:1]
    )
    return queryset.select_related("payment", "payment__client").annotate(
        history_payments=_count(others, "client_id"),
        history_declines=_count(others.filter(DECLINED), "client_id"),
        history_refunds=_count(refunds, "payment__client_id"),
        authorized_at=Subquery(authorized, output_field=DateTimeField()),
    )


def review_queue(*, now: datetime | None = None) -> QuerySet[PaymentReview]:
    """The pending reviews, oldest first, with history and authorization time (see `assessments_with_history`)."""
    return assessments_with_history(PaymentReview.objects.all(), now=now).order_by("created_at", "id")


def review_for_decision(*, assessment_id: int) -> RiskAssessment:
    """One assessment (whatever its review state) with the same annotations as the queue.

    :raises RiskAssessment.DoesNotExist:
    """
    return assessments_with_history(RiskAssessment.objects.all()).select_related("reviewed_by").get(pk=assessment_id)


@dataclass(frozen=True)
class AuthorizationExpiry:
    """When the card authorization of a held payment lapses (None: not authorized, or no longer open)."""

    expires_at: datetime | None
    text: str
    is_urgent: bool = False


def authorization_expiry(
    *, status: str, authorized_at: datetime | None, now: datetime | None = None
) -> AuthorizationExpiry:
    """The authorization's expiry: time of the move to requires_capture plus `AUTHORIZATION_VALIDITY`."""
    if status != PaymentStatus.REQUIRES_CAPTURE or authorized_at is None:
        if status in {PaymentStatus.CANCELED, PaymentStatus.FAILED}:
            return AuthorizationExpiry(None, f"none ({status})")
        if status in {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}:
            return AuthorizationExpiry(None, "captured")
        return AuthorizationExpiry(None, "not authorized yet")
    now = now or timezone.now()
    expires_at = authorized_at + AUTHORIZATION_VALIDITY
    left = expires_at - now
    if left <= timedelta(0):
        return AuthorizationExpiry(expires_at, f"expired {timezone.localtime(expires_at):%Y-%m-%d %H:%M}", True)
    return AuthorizationExpiry(
        expires_at,
        f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M} (in {duration_text(left)})",
        left < timedelta(days=1),
    )


def duration_text(delta: timedelta) -> str:
    """`2 d 3 h`, `5 h 12 min`, `4 min` — short enough for a table cell."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
