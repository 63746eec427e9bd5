"""Refunds of captured payments, and their status history."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from payments.models import ChangeSource, Payment, make_public_id
from refunds.states import RefundStatus


def new_refund_id() -> str:
    return make_public_id("re_")


class RefundReason(models.TextChoices):
    REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by customer"
    DUPLICATE = "duplicate", "Duplicate"
    FRAUDULENT = "fraudulent", "Fraudulent"


class Refund(models.Model):
    """Money going back to the customer. Only `refunds.services` writes `status`."""

    public_id = models.CharField("ID", max_length=40, unique=True, default=new_refund_id, editable=False)
    payment = models.ForeignKey(  # indexed as the first column of refund_payment_status_idx
        Payment, on_delete=models.PROTECT, related_name="refunds", db_index=False
    )
    amount = models.BigIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(max_length=32, choices=RefundReason.choices, blank=True, default="")
    failure_reason = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    gateway_reference = models.CharField("gateway ID", max_length=255, null=True, blank=True, unique=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds_requested",
        help_text="The API client or staff member who asked for it (empty: made outside the service).",
    )
    idempotency_key = models.CharField(max_length=255, blank=True, default="", editable=False)
    attempts = models.PositiveIntegerField(default=0, help_text="Gateway submissions so far.")
    last_error = models.TextField(blank=True, default="")
    needs_attention = models.BooleanField(
        default=False, help_text="Retries ran out while the refund is still pending: a person must look."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="refund_currency_lower_iso"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_valid"),
            models.UniqueConstraint(
                fields=["payment", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="refund_unique_payment_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["payment", "status"], name="refund_payment_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="refund_created_idx"),
            models.Index(fields=["status", "-created_at"], name="refund_status_created_idx"),
            models.Index(fields=["updated_at"], condition=Q(status="pending"), name="refund_pending_idx"),
        ]
        permissions = [("approve_refund", "Can approve a staff refund above the approval limit")]

    def __str__(self) -> str:
        return self.public_id


class RefundStatusChange(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
