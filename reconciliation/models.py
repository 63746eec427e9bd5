"""Reconciliation results: a run per compared window and the discrepancies it found (tables kept from `audit`)."""

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    CLEAN = "clean", "Clean"
    UNRESOLVED = "unresolved", "Discrepancies open"
    FAILED = "failed", "Failed"


class ReconciliationRun(models.Model):
    """One comparison of our records with the gateway's for a time window."""

    gateway = models.CharField(max_length=32)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    fix = models.BooleanField(default=False, help_text="Whether safe corrections were applied.")
    gateway_records = models.PositiveIntegerField(default=0)
    our_records = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    discrepancies_found = models.PositiveIntegerField(default=0)
    discrepancies_fixed = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)  # a duration, not money
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "audit_reconciliationrun"  # the model moved from `audit`; its table did not
        ordering = ("-started_at", "-id")
        permissions = [("run_reconciliation_fix", "Can apply reconciliation fixes")]

    def __str__(self) -> str:
        return f"run {self.pk} {self.window_start:%Y-%m-%d}…{self.window_end:%Y-%m-%d} ({self.status})"


class DiscrepancyKind(models.TextChoices):
    MISSING_HERE = "missing_here", "Missing here"
    MISSING_AT_GATEWAY = "missing_at_gateway", "Missing at the gateway"
    AMOUNT = "amount", "Amount differs"
    CURRENCY = "currency", "Currency differs"
    STATUS = "status", "Status differs"
    CAPTURED = "captured", "Captured amount differs"
    REFUNDED = "refunded", "Refunded amount differs"


class DiscrepancyState(models.TextChoices):
    OPEN = "open", "Open"
    FIXED = "fixed", "Fixed automatically"
    RESOLVED = "resolved", "Resolved by staff"
    ACCEPTED = "accepted", "Accepted by staff"


class Discrepancy(models.Model):
    """One difference between a payment of ours and the gateway's record of it (or a record only one side has)."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies")
    kind = models.CharField(max_length=32, choices=DiscrepancyKind.choices)
    state = models.CharField(max_length=16, choices=DiscrepancyState.choices, default=DiscrepancyState.OPEN)
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True)
    gateway_reference = models.CharField(max_length=255, blank=True, default="")
    ours = models.JSONField(default=dict, blank=True, help_text="Our values (minor units).")
    theirs = models.JSONField(default=dict, blank=True, help_text="The gateway's values (minor units).")
    note = models.TextField(blank=True, default="")
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audit_discrepancy"  # the model moved from `audit`; its table did not
        ordering = ("-created_at", "-id")
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["state", "kind"], name="discrepancy_state_kind_idx"),
            models.Index(fields=["run", "state"], name="discrepancy_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.gateway_reference or self.payment_id}"
