"""The Stripe inbox: every verified event kept once (raw body included), with what processing made of it."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.encryption import EncryptedTextField
from payments.models import Payment
from refunds.models import Refund


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class IgnoredReason(models.TextChoices):
    UNKNOWN_TYPE = "unknown_type", "Unknown type"
    STALE = "stale", "Stale (would not move the object forward)"
    UNKNOWN_OBJECT = "unknown_object", "Unknown object (no payment or refund of ours)"
    NO_REFUND_DETAILS = "no_refund_details", "No refund details (each refund comes in its own event)"


class ReceivedVia(models.TextChoices):
    WEBHOOK = "webhook", "Webhook delivery"
    RECOVERY = "recovery", "Recovered from Stripe's event list"


class WebhookEvent(models.Model):
    """One Stripe event, stored once by its id. Only `webhooks.services` writes `status`."""

    stripe_id = models.CharField("Stripe event ID", max_length=255, unique=True)
    type = models.CharField(max_length=128)
    api_version = models.CharField(max_length=64, blank=True, default="")
    livemode = models.BooleanField(default=False)
    body = EncryptedTextField(
        help_text="The event exactly as received (the signed body for a webhook delivery), encrypted at rest: it "
        "carries billing details."
    )
    created_at = models.DateTimeField("created at Stripe", null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    received_via = models.CharField(max_length=16, choices=ReceivedVia.choices, default=ReceivedVia.WEBHOOK)
    status = models.CharField(max_length=16, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    ignored_reason = models.CharField(max_length=32, choices=IgnoredReason.choices, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts so far.")
    last_error = models.TextField(blank=True, default="", help_text="The last processing error, with its traceback.")
    processed_at = models.DateTimeField(null=True, blank=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="webhook_events")
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="webhook_events")

    class Meta:
        ordering = ("-received_at", "-id")
        permissions = [("reprocess_webhookevent", "Can reprocess webhook events")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=WebhookStatus.values), name="webhook_status_valid"),
            models.CheckConstraint(
                condition=Q(status=WebhookStatus.IGNORED) | Q(ignored_reason=""), name="webhook_reason_only_if_ignored"
            ),
        ]
        indexes = [
            models.Index(fields=["-received_at", "-id"], name="webhook_received_idx"),
            models.Index(fields=["status", "-received_at"], name="webhook_status_received_idx"),
            models.Index(fields=["type", "-received_at"], name="webhook_type_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type}"


class WebhookCursor(models.Model):
    """How far the recovery task has read Stripe's event list (one row per feed)."""

    name = models.CharField(max_length=64, unique=True)
    position = models.BigIntegerField(help_text="Unix time of the newest event seen; the next read starts before it.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
