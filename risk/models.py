"""Risk rule settings, per-currency amount thresholds, the blocklist and every assessment made."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from payments.models import Payment, ReviewState
from payments.ports import Decision


class Level(models.TextChoices):
    NORMAL = "normal", "Normal"
    ELEVATED = "elevated", "Elevated"
    HIGHEST = "highest", "Highest"


def _points(default: int, help_text: str) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        default=default, validators=[MaxValueValidator(100)], help_text=help_text + " (0 turns the rule off)."
    )


def _count(default: int, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(default=default, validators=[MinValueValidator(1)], help_text=help_text)


class RiskSettings(models.Model):
    """The rules' settings: one row (pk 1). Every change raises `version`, which each assessment records."""

    version = models.PositiveIntegerField(default=1, editable=False)
    review_score = models.PositiveSmallIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="A score at or above this holds the payment for review (level elevated).",
    )
    block_score = models.PositiveSmallIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="A score at or above this blocks the payment (level highest).",
    )
    blocklist_points = _points(
        100, "Points when the e-mail, its domain, the IP, the customer or the card is blocklisted"
    )
    amount_review_points = _points(60, "Points when the amount reaches the currency's review threshold")
    amount_block_points = _points(100, "Points when the amount reaches the currency's block threshold")
    first_seen_points = _points(50, "Points for a customer never seen before paying the currency's first-seen amount")
    velocity_points = _points(60, "Points when a customer, e-mail or IP made too many payments in a window")
    decline_points = _points(80, "Points when a customer, e-mail or IP had too many declines in a window")
    short_window_minutes = _count(10, "The short velocity window, in minutes.")
    short_window_payments = _count(5, "Payments allowed in the short window per customer, e-mail and IP.")
    short_window_declines = _count(3, "Declines allowed in the short window per customer, e-mail and IP.")
    long_window_hours = _count(24, "The long velocity window, in hours.")
    long_window_payments = _count(20, "Payments allowed in the long window per customer, e-mail and IP.")
    long_window_declines = _count(5, "Declines allowed in the long window per customer, e-mail and IP.")
    review_remind_hours = _count(24, "A review still pending after this many hours is reported (log and metric).")
    review_cancel_hours = models.PositiveIntegerField(
        default=144,
        validators=[MinValueValidator(1), MaxValueValidator(167)],
        help_text="A review still pending after this many hours is rejected and the payment canceled, "
        "before the card authorization expires (7 days).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "risk settings"
        verbose_name_plural = "risk settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="risk_settings_single_row"),
            models.CheckConstraint(condition=Q(review_score__lte=models.F("block_score")), name="risk_review_le_block"),
            models.CheckConstraint(
                condition=Q(review_remind_hours__lt=models.F("review_cancel_hours")), name="risk_remind_before_cancel"
            ),
        ]

    def __str__(self) -> str:
        return f"Risk settings (version {self.version})"


class CurrencyThreshold(models.Model):
    """Amount thresholds of one currency, in its minor unit (so jpy and usd each get their own)."""

    currency = models.CharField(max_length=3, unique=True)
    review_amount = models.BigIntegerField(help_text="Hold for review at or above this amount (minor units).")
    block_amount = models.BigIntegerField(
        null=True, blank=True, help_text="Block at or above this amount (minor units). Empty: never block by amount."
    )
    first_seen_amount = models.BigIntegerField(
        help_text="A customer's first payment at or above this amount scores the first-seen points (minor units)."
    )

    class Meta:
        ordering = ("currency",)
        constraints = [
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="threshold_currency_lower_iso"),
            models.CheckConstraint(
                condition=Q(review_amount__gt=0) & Q(first_seen_amount__gt=0), name="threshold_amounts_positive"
            ),
            models.CheckConstraint(
                condition=Q(block_amount__isnull=True) | Q(block_amount__gte=models.F("review_amount")),
                name="threshold_block_ge_review",
            ),
        ]

    def __str__(self) -> str:
        return self.currency.upper()


class BlockKind(models.TextChoices):
    EMAIL = "email", "E-mail address"
    EMAIL_DOMAIN = "email_domain", "E-mail domain"
    IP = "ip", "IP address or network (CIDR)"
    CUSTOMER = "customer", "Customer id"
    CARD_FINGERPRINT = "card_fingerprint", "Card fingerprint"


class BlocklistEntry(models.Model):
    """A value that blocks payments while the entry is active (not expired). Values are stored normalized."""

    kind = models.CharField(max_length=32, choices=BlockKind.choices)
    value = models.CharField(
        max_length=255,
        help_text="E-mail and domains in lower case; an IP as its network (203.0.113.7/32, 10.0.0.0/8).",
    )
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="API client",
        help_text="Customer ids belong to one shop: set the shop. Empty: every shop.",
    )
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until someone expires it.")

    class Meta:
        verbose_name = "blocklist entry"
        verbose_name_plural = "blocklist"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["kind", "value"], name="blocklist_lookup_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class RiskAssessment(models.Model):
    """What the rules said about a payment when it was created, and the manual review that followed."""

    payment = models.OneToOneField(Payment, on_delete=models.CASCADE, related_name="risk_assessment")
    score = models.PositiveSmallIntegerField()
    level = models.CharField(max_length=16, choices=Level.choices)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reasons = models.JSONField(default=list, help_text="The rules that fired: code, rule, points, message.")
    settings_version = models.PositiveIntegerField(help_text="The risk settings version the rules ran with.")
    card_fingerprint = models.CharField(max_length=255, blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, default="", help_text="The reviewer's reason, or why it closed.")
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When the overdue review was reported.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=100), name="risk_score_range"),
        ]
        indexes = [
            models.Index(fields=["decision", "-created_at"], name="risk_decision_idx"),
        ]
        permissions = [("review_payment", "Can approve or reject a payment held for review")]

    def __str__(self) -> str:
        return f"{self.decision} ({self.score}) for payment {self.payment_id}"

    @property
    def reason_codes(self) -> list[str]:
        return [reason["code"] for reason in self.reasons]


class PendingReviewManager(models.Manager["PaymentReview"]):
    def get_queryset(self) -> models.QuerySet["PaymentReview"]:
        return super().get_queryset().filter(payment__review_state=ReviewState.PENDING)


class PaymentReview(RiskAssessment):
    """The manual review queue: assessments whose review is still pending (the admin lists them oldest first)."""

    objects = PendingReviewManager()  # type: ignore[misc]

    class Meta:
        proxy = True
        ordering = ("created_at", "id")
        verbose_name = "payment to review"
        verbose_name_plural = "payments to review"
        default_permissions = ()  # the queue uses the risk assessment's permissions (view, review_payment)
