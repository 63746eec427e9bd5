"""Reads of refunds: the API's, what is left to refund, staff approval limits, refunds left pending."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Sum
from django.utils import timezone
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from config.prepared import PreparedQuery, Slots
from payments.models import Payment
from refunds import states
from refunds.models import Refund
from refunds.states import RefundStatus


def refund_queryset_for(*, client: User) -> QuerySet[Refund]:
    """Finance clients read every refund; a storefront only those of its own payments."""
    refunds = Refund.objects.select_related("payment")
    if client.api_role == ApiRole.FINANCE:
        return refunds
    return refunds.filter(payment__client=client)


def refund_get(*, client: User, public_id: str) -> Refund:
    """:raises NotFound: no such refund for this client."""
    refund = refund_queryset_for(client=client).filter(public_id=public_id).first()
    if refund is None:
        raise NotFound()
    return refund


def refundable_amount(payment: Payment) -> int:
    """What is left to refund: received, less succeeded and pending refunds and what disputes hold (one query).

    Money under a chargeback the gateway will not refund (needs response, under review, lost) is not
    refundable: `Payment.amount_dispute_held`, kept by the disputes app.
    """
    rows = _committed_total.execute(values={"payment": payment.pk})
    # No committed refund: no group, no row. PostgreSQL's SUM of a bigint is a numeric: back to an int.
    return _left(payment, rows[0][0] if rows else None)


def refundable_amount_and_new_id(payment: Payment) -> tuple[int, int | None]:
    """`refundable_amount`, and an id drawn from the refunds' sequence for the refund about to be created, in
    one statement (PostgreSQL; elsewhere no id: None). The refund's INSERT can then wait in a batch with its
    history row and event (`config.rows.batched`): an id drawn and not used is a gap, nothing more.
    """
    if connection.vendor != "postgresql":
        return refundable_amount(payment), None
    ((committed, drawn),) = _committed_total_and_new_id.execute(values={"payment": payment.pk})
    return _left(payment, committed), drawn


def _left(payment: Payment, committed: Any) -> int:
    """What is left of the payment beside `committed` (a SUM: None for no refund, a numeric on PostgreSQL)."""
    taken = int(committed) if committed is not None else 0
    return max(payment.amount_received - taken - payment.amount_dispute_held, 0)


def _committed(slots: Slots) -> QuerySet[Any, Any]:
    refunds = Refund.objects.filter(payment_id=slots.number("payment"), status__in=sorted(states.COMMITTED))
    return refunds.order_by().values("payment_id").annotate(total=Sum("amount")).values("total")


@PreparedQuery
def _committed_total(slots: Slots) -> QuerySet[Any, Any]:
    """The sum of a payment's succeeded and pending refunds (compiled once: it runs under every refund's lock)."""
    return _committed(slots)


@PreparedQuery
def _committed_total_and_new_id(slots: Slots) -> tuple[str, Sequence[Any]]:
    """`_committed_total` (NULL: none) beside the refunds' next id, in one row."""
    total_sql, params = slots.compile(_committed(slots))
    sequence = f"pg_get_serial_sequence('{Refund._meta.db_table}', '{Refund._meta.pk.column}')"
    return f"SELECT ({total_sql}), nextval({sequence})", params  # noqa: S608 - our table's names


def refund_approval_limit(*, currency: str) -> int:
    """The largest staff refund (minor units) that runs without a second person's approval."""
    limits: dict[str, int] = settings.BACKOFFICE_REFUND_APPROVAL_LIMIT
    return limits.get(currency.lower(), limits["default"])


def refunds_stuck(*, older_than: timedelta | None = None) -> QuerySet[Refund]:
    """Refunds left pending (not flagged for staff) for longer than the threshold, and not yet accepted by the gateway.

    One with a gateway reference is pending at the gateway: submitting it again would not bring its answer
    (that comes by webhook, or reconciliation) and, once the key `re_X:create` expires there, could refund twice.
    """
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.REFUNDS_STUCK_AFTER_SECONDS))
    return Refund.objects.filter(
        status=RefundStatus.PENDING, needs_attention=False, updated_at__lt=cutoff, gateway_reference__isnull=True
    )
