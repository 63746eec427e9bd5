"""Audit trail (hash-chained staff actions), four-eyes approval requests, and reconciliation results."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class StaffAction(models.Model):
    """One thing a staff member did in the back office. Rows are hash-chained and never change.

    `hash` is the SHA-256 of this row's content plus `previous_hash`; `audit_verify` walks the chain
    and names the first row that was altered or removed.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_actions")
    action = models.CharField(max_length=64, help_text="What was done, e.g. refund, status_override, approve.")
    object_type = models.CharField(max_length=64, help_text="payment, refund, webhook_event, discrepancy, …")
    object_id = models.CharField(max_length=64, help_text="The object's public id (pay_…, re_…) or pk.")
    reason = models.TextField(blank=True, default="")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ("-id",)
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="staffaction_object_idx"),
            models.Index(fields=["actor", "-created_at"], name="staffaction_actor_idx"),
            models.Index(fields=["-created_at"], name="staffaction_created_idx"),
        ]
        permissions = [("view_audit_trail", "Can view the audit trail")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id} by {self.actor_id}"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Approved, but the action failed"


class ApprovalRequest(models.Model):
    """A staff action that needs a second person (four eyes) before the owning service runs."""

    kind = models.CharField(max_length=32, help_text="refund or status_override.")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    params = models.JSONField(default=dict, help_text="What the service will be called with once approved.")
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests_made"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_requests_decided",
    )
    decision_reason = models.TextField(blank=True, default="")
    result = models.TextField(blank=True, default="", help_text="What the service answered after approval.")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="approval_not_by_requester",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="approval_status_idx")]
        permissions = [("approve_request", "Can approve or reject another staff member's request")]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} ({self.status})"


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
        ordering = ("-created_at", "-id")
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["state", "kind"], name="discrepancy_state_kind_idx"),
            models.Index(fields=["run", "state"], name="discrepancy_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.gateway_reference or self.payment_id}"
