"""Payments, their status history, API idempotency keys and dead-lettered order messages."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.encryption import EncryptedJSONField, EncryptedTextField, email_index, ip_index
from config.ids import random_token
from payments.states import PaymentStatus


def make_public_id(prefix: str, length: int = 24) -> str:
    return prefix + random_token(length)


def new_payment_id() -> str:
    return make_public_id("pay_")


class CaptureMethod(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic"
    MANUAL = "manual", "Manual"


class ChangeSource(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    ADMIN = "admin", "Admin"
    WORKER = "worker", "Worker"


class ReviewState(models.TextChoices):
    """The review hold: a held payment cannot be captured until staff approve it."""

    NONE = "", "No review"
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class SetupFutureUsage(models.TextChoices):
    OFF_SESSION = "off_session", "Off session"
    ON_SESSION = "on_session", "On session"


class GatewayOperation(models.TextChoices):
    CREATE = "create", "Create intent"
    CREATE_CONFIRM = "create_confirm", "Create and confirm intent"  # one gateway call (Stripe: confirm=true)
    CONFIRM = "confirm", "Confirm"
    CAPTURE = "capture", "Capture"
    CANCEL = "cancel", "Cancel"


class Payment(models.Model):
    """A payment intent of one API client. Only `payments.services.status` writes `status` (and its history)."""

    public_id = models.CharField("ID", max_length=40, unique=True, default=new_payment_id, editable=False)
    client = models.ForeignKey(  # indexed as the first column of payment_client_created_idx
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="payments",
        verbose_name="API client",
        db_index=False,
    )
    idempotency_key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        editable=False,
        help_text="What created it (idem_<id> for an API key, order:<id> for an order message); retries resume it.",
    )
    amount = models.BigIntegerField(help_text="In the currency's minor unit (cents, yen, fils).")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32, choices=PaymentStatus.choices, editable=False)
    capture_method = models.CharField(max_length=16, choices=CaptureMethod.choices, default=CaptureMethod.AUTOMATIC)
    amount_capturable = models.BigIntegerField(default=0)
    amount_received = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    customer_id = models.CharField("customer", max_length=255)
    order_id = models.CharField("order", max_length=255, blank=True, default="")
    description = models.CharField(max_length=1000, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    payment_method = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="As the storefront sent it: a gateway token (pm_...) or a saved method (pmt_...).",
    )
    gateway_payment_method = models.CharField(
        max_length=255,
        blank=True,
        default="",
        editable=False,
        help_text="The saved method charged at the gateway (pm_...), for a pmt_...",
    )
    gateway_customer = models.CharField(
        max_length=255,
        blank=True,
        default="",
        editable=False,
        help_text="The gateway's customer (cus_...) the payment is made for.",
    )
    off_session = models.BooleanField(
        default=False, editable=False, help_text="Merchant-initiated: no customer present."
    )
    invoice = models.CharField(
        max_length=40,
        blank=True,
        default="",
        editable=False,
        db_index=True,
        help_text="The invoice (in_...) this payment charges: made by the gateway's billing engine.",
    )
    setup_future_usage = models.CharField(
        max_length=16,
        choices=SetupFutureUsage.choices,
        blank=True,
        default="",
        editable=False,
        help_text="Save the card for later use once the payment succeeds.",
    )
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField(
        "gateway ID", max_length=255, null=True, blank=True, unique=True, help_text="Stripe's PaymentIntent id."
    )
    client_secret = models.CharField(max_length=255, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    # Encrypted at rest (config.encryption); risk velocity and the admin find them through the blind indexes,
    # which `save()` keeps in step.
    customer_email = EncryptedTextField(blank=True, default="")
    customer_ip = EncryptedTextField(null=True, blank=True, help_text="IPv4 or IPv6, validated by the API.")
    customer_email_index = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="Keyed blind index of the e-mail."
    )
    customer_ip_index = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="Keyed blind index of the IP."
    )
    pending_operation = models.CharField(
        max_length=16,
        choices=GatewayOperation.choices,
        blank=True,
        default="",
        help_text="A gateway call recorded but not yet settled. A worker finishes it with the same key.",
    )
    pending_operation_amount = models.BigIntegerField(null=True, blank=True)
    pending_operation_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=32, blank=True, default="")
    needs_attention = models.BooleanField(
        default=False, help_text="Settling with the gateway ran out of retries: a person must look."
    )
    last_error = models.TextField(blank=True, default="")
    disputed_at = models.DateTimeField(
        "disputed", null=True, blank=True, editable=False, help_text="When the customer's bank opened a dispute."
    )
    dispute_reason = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="The bank's reason (fraudulent, ...)."
    )
    dispute_reference = models.CharField(
        "dispute ID", max_length=255, blank=True, default="", editable=False, help_text="Stripe's dispute id (dp_...)."
    )
    amount_disputed = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="Under open or lost disputes (not closed inquiries, not won), in the currency's minor unit.",
    )
    amount_dispute_held = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="Under disputes whose charge the gateway will not refund (needs response, under review, lost).",
    )
    risk_score = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False, help_text="What the risk check scored (0-100) when it was created."
    )
    risk_level = models.CharField(max_length=16, blank=True, default="", editable=False)
    review_state = models.CharField(
        "review",
        max_length=16,
        choices=ReviewState.choices,
        blank=True,
        default="",
        editable=False,
        help_text="The review hold: pending blocks capture until staff decide; cancel or failure ends it.",
    )
    review_reasons = models.JSONField(
        default=list, blank=True, editable=False, help_text="Why it was held (the risk check's reason codes)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0) & Q(amount__lte=99_999_999), name="payment_amount_range"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0)
                & Q(amount_refunded__lte=models.F("amount_received"))
                & Q(amount_received__lte=models.F("amount")),
                name="payment_refunded_le_received_le_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_capturable__gte=0) & Q(amount_capturable__lte=models.F("amount")),
                name="payment_capturable_range",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="payment_currency_lower_iso"),
            models.CheckConstraint(
                condition=Q(amount_disputed__gte=0) & Q(amount_dispute_held__gte=0),
                name="payment_disputed_not_negative",
            ),
            models.CheckConstraint(condition=Q(status__in=PaymentStatus.values), name="payment_status_valid"),
            models.UniqueConstraint(
                fields=["client", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="payment_unique_client_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="payment_created_idx"),
            models.Index(fields=["client", "-created_at", "-id"], name="payment_client_created_idx"),
            models.Index(fields=["client", "status", "-created_at"], name="payment_client_status_idx"),
            models.Index(fields=["status", "-created_at"], name="payment_status_created_idx"),
            models.Index(fields=["customer_id", "-created_at"], name="payment_customer_idx"),
            models.Index(fields=["order_id"], name="payment_order_idx"),
            models.Index(fields=["customer_email_index", "created_at"], name="payment_email_index_idx"),
            models.Index(fields=["customer_ip_index", "created_at"], name="payment_ip_index_idx"),
            models.Index(
                fields=["pending_operation_at"], condition=~Q(pending_operation=""), name="payment_pending_op_idx"
            ),
            models.Index(fields=["updated_at"], condition=Q(needs_attention=True), name="payment_attention_idx"),
            models.Index(fields=["created_at"], condition=Q(review_state="pending"), name="payment_held_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The blind indexes follow the e-mail and IP on every write that writes them (creation, erasure); a write
        # of other fields (a status change) leaves them alone, and never loads a deferred e-mail to do so.
        kwargs["update_fields"] = keep_indexes(self, kwargs.get("update_fields"), BLIND_INDEXES)
        super().save(*args, **kwargs)


BLIND_INDEXES = (
    ("customer_email", "customer_email_index", email_index),
    ("customer_ip", "customer_ip_index", ip_index),
)


def keep_indexes(
    obj: models.Model, update_fields: Any, indexes: tuple[tuple[str, str, Callable[[str | None], str]], ...]
) -> list[str] | None:
    """Set each blind index from its source field when the save writes that field; the update_fields to save with."""
    fields = list(update_fields) if update_fields is not None else None
    deferred = obj.get_deferred_fields()
    for source, index, function in indexes:
        if source in deferred or (fields is not None and source not in fields):
            continue
        setattr(obj, index, function(getattr(obj, source)))
        if fields is not None and index not in fields:
            fields.append(index)
    return fields


class PaymentStatusChange(models.Model):
    """One row per status change: from, to, who, through what, why."""

    payment = models.ForeignKey(  # indexed as the first column of status_change_payment_idx
        Payment, on_delete=models.CASCADE, related_name="status_changes", db_index=False
    )
    from_status = models.CharField(max_length=32, blank=True, default="")
    to_status = models.CharField(max_length=32)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["payment", "-created_at"], name="status_change_payment_idx")]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class IdempotencyKey(models.Model):
    """An API client's `Idempotency-Key`: the request it belongs to and the response it got."""

    client = models.ForeignKey(  # indexed as the first column of idempotency_unique_client_key
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys", db_index=False
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    lock_token = models.CharField(max_length=32, blank=True, default="")
    locked_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The stored response holds the client_secret and e-mails: encrypted at rest.
    response_body = EncryptedJSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_unique_client_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key}"


class DeadLetter(models.Model):
    """A message a consumer could not use (malformed, unknown client, …), kept for inspection."""

    source = models.CharField(max_length=64, help_text="What it came from, e.g. order.placed.")
    body = EncryptedTextField(help_text="The message as received (card numbers masked), encrypted at rest.")
    headers = models.JSONField(default=dict, blank=True)
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["source", "-created_at"], name="deadletter_source_idx")]

    def __str__(self) -> str:
        return f"{self.source} #{self.pk}"
