"""Disputes of payments (the gateway's, mirrored), their status history and the evidence files sent for them.

Money is in integer minor units of the dispute's currency. Disputes are written only by `disputes.services`;
a status changes only through `disputes.status` (history and event in one transaction). Each gateway dispute
is stored once: its reference is unique per gateway. Evidence files are not kept here (the project has no
media storage configured): their metadata, digest and the gateway's file id are.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.encryption import EncryptedJSONField
from disputes.states import DisputeStatus
from payments.models import ChangeSource, make_public_id


def new_dispute_id() -> str:
    return make_public_id("dp_")


class Dispute(models.Model):
    public_id = models.CharField("ID", max_length=40, unique=True, default=new_dispute_id, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes", verbose_name="API client"
    )
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, related_name="disputes")
    amount = models.BigIntegerField(help_text="Disputed, in the currency's minor unit.")
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True, default="", help_text="The bank's reason (fraudulent, ...).")
    status = models.CharField(max_length=32, choices=DisputeStatus.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True, help_text="Evidence must be submitted before.")
    evidence = EncryptedJSONField(
        default=dict, blank=True, help_text="The evidence text fields saved at the gateway (encrypted at rest)."
    )
    has_evidence = models.BooleanField(default=False)
    evidence_submitted_at = models.DateTimeField(null=True, blank=True)
    submission_count = models.PositiveIntegerField(default=0)
    evidence_saves = models.PositiveIntegerField(
        default=0, editable=False, help_text="Evidence updates asked of the gateway (the n of each call's key)."
    )
    funds_withdrawn = models.BooleanField(default=False, help_text="The gateway took the amount from the balance.")
    funds_reinstated = models.BooleanField(default=False, help_text="The gateway gave the amount back (won).")
    is_charge_refundable = models.BooleanField(
        default=False, help_text="The disputed charge can still be refunded (inquiries)."
    )
    gateway_name = models.CharField("gateway", max_length=32)
    gateway_reference = models.CharField("gateway ID", max_length=255, help_text="The gateway's dispute (du_…).")
    charge_reference = models.CharField(max_length=255, blank=True, default="", help_text="The disputed charge.")
    gateway_created_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["gateway_name", "gateway_reference"], name="dispute_unique_reference"),
            models.CheckConstraint(condition=Q(status__in=DisputeStatus.values), name="dispute_status_valid"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="dispute_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(funds_reinstated=False) | Q(funds_withdrawn=True), name="dispute_reinstated_after_withdrawn"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "evidence_due_by"], name="dispute_queue_idx"),
            models.Index(fields=["client", "-created_at", "-id"], name="dispute_client_idx"),
            models.Index(fields=["payment", "-created_at", "-id"], name="dispute_payment_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="dispute_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="dispute_created_idx"),
            models.Index(fields=["charge_reference"], name="dispute_charge_idx"),
        ]
        permissions = [
            ("submit_evidence", "Can save and submit a dispute's evidence"),
            ("accept_dispute", "Can accept a dispute (close it as lost)"),
        ]

    def __str__(self) -> str:
        return self.public_id


class DisputeStatusChange(models.Model):
    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class DisputeEvidenceFile(models.Model):
    """A file sent to the gateway as evidence (one per evidence file field): what it was, not its bytes."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="evidence_files")
    field = models.CharField(max_length=64, help_text="The evidence field it fills (receipt, ...).")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField(help_text="Bytes.")
    sha256 = models.CharField(max_length=64)
    gateway_file_id = models.CharField("gateway file ID", max_length=255, help_text="The gateway's file (file_…).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("field", "id")
        constraints = [models.UniqueConstraint(fields=["dispute", "field"], name="dispute_evidence_file_unique_field")]

    def __str__(self) -> str:
        return f"{self.field}: {self.filename}"
