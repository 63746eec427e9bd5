"""Reads of payments, shared by the API, the admin and commands."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from payments import states
from payments.models import Payment
from payments.states import PaymentStatus


def payment_queryset_for(*, client: User) -> QuerySet[Payment]:
    """Finance clients read every payment; a storefront only its own."""
    if client.api_role == ApiRole.FINANCE:
        return Payment.objects.all()
    return Payment.objects.filter(client=client)


def payment_get(*, client: User, public_id: str) -> Payment:
    """:raises NotFound: no such payment for this client (another client's payment is 404, never 403)."""
    payment = payment_queryset_for(client=client).filter(public_id=public_id).first()
    if payment is None:
        raise NotFound()
    return payment


def payments_stuck(*, older_than: timedelta | None = None) -> QuerySet[Payment]:
    """Payments with a recorded gateway operation, or `processing`, untouched for longer than the threshold."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.PAYMENTS_STUCK_AFTER_SECONDS))
    recorded = ~Q(pending_operation="") & Q(pending_operation_at__lt=cutoff)
    processing = Q(status=PaymentStatus.PROCESSING, pending_operation="", updated_at__lt=cutoff)
    return Payment.objects.filter(recorded | processing, needs_attention=False)


def payment_is_stuck(payment: Payment) -> bool:
    """Whether a payment has a gateway operation left to finish (or was flagged for staff)."""
    return states.is_stuck(
        status=payment.status, pending_operation=payment.pending_operation, needs_attention=payment.needs_attention
    )
