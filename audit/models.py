"""Audit trail (hash-chained staff actions) and four-eyes approval requests."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class StaffAction(models.Model):
    """One thing a staff member did in the back office. Rows are hash-chained and never change.

    `hash` is the SHA-256 of this row's content plus `previous_hash`; `audit_verify` walks the chain
    and names the first row that was altered or removed. Personal values in before/after are chained as
    their digests (`personal_digests`), so erasing one leaves the chain valid.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_actions")
    action = models.CharField(max_length=64, help_text="What was done, e.g. refund, status_override, approve.")
    object_type = models.CharField(max_length=64, help_text="payment, refund, webhook_event, discrepancy, …")
    object_id = models.CharField(max_length=64, help_text="The object's public id (pay_…, re_…) or pk.")
    reason = models.TextField(blank=True, default="")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    personal_digests = models.JSONField(
        default=dict,
        blank=True,
        help_text="SHA-256 of each personal value in before/after, by path: the chain covers these, not the values.",
    )
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
