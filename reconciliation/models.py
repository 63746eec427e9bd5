"""Reconciliation results: a run per compared window and the discrepancies it found (tables kept from `audit`)."""

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    CLEAN = "clean", "Clean"
    UNRESOLVED = "unresolved", "Discrepancies open"
    FAILED = "failed", "Failed"


class RunScope(models.TextChoices):
    """What a run compared: payments (the intents created in its window), saved payment methods, or both."""

    ALL = "all", "Payments and saved methods"
    PAYMENTS = "payments", "Payments"
    PAYMENT_METHODS = "payment_methods", "Saved payment methods"

    @property
    def covers_payments(self) -> bool:
        return self in (RunScope.ALL, RunScope.PAYMENTS)

    @property
    def covers_payment_methods(self) -> bool:
        return self in (RunScope.ALL, RunScope.PAYMENT_METHODS)


class ReconciliationRun(models.Model):
    """One comparison of our records with the gateway's: payments for a time window, saved methods as they are now."""

    gateway = models.CharField(max_length=32)
    scope = models.CharField(
        max_length=16,
        choices=RunScope.choices,
        default=RunScope.PAYMENTS,  # the runs made before saved methods were compared
        help_text="Payments of the window, customers' saved payment methods, or both.",
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    fix = models.BooleanField(default=False, help_text="Whether safe corrections were applied.")
    gateway_records = models.PositiveIntegerField(default=0)
    our_records = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    customers_compared = models.PositiveIntegerField(
        default=0, help_text="Gateway customers whose methods were listed."
    )
    gateway_payment_methods = models.PositiveIntegerField(default=0)
    our_payment_methods = models.PositiveIntegerField(default=0, help_text="Our active saved methods compared.")
    payment_methods_matched = models.PositiveIntegerField(default=0)
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
    # customers' saved payment methods (a gateway customer's attached cards against our rows)
    METHOD_MISSING_HERE = "method_missing_here", "Method missing here"
    METHOD_MISSING_AT_GATEWAY = "method_missing_at_gateway", "Method missing at gateway"
    METHOD_DETACHED_HERE = "method_detached_here", "Method detached only here"


PAYMENT_METHOD_KINDS = frozenset(
    {
        DiscrepancyKind.METHOD_MISSING_HERE,
        DiscrepancyKind.METHOD_MISSING_AT_GATEWAY,
        DiscrepancyKind.METHOD_DETACHED_HERE,
    }
)


def kinds_of(scope: str) -> list[DiscrepancyKind]:
    """The kinds of discrepancy a run of this scope can find, in declaration order."""
    covered = RunScope(scope)
    return [
        kind
        for kind in DiscrepancyKind
        if (covered.covers_payment_methods if kind in PAYMENT_METHOD_KINDS else covered.covers_payments)
    ]


class DiscrepancyState(models.TextChoices):
    OPEN = "open", "Open"
    FIXED = "fixed", "Fixed automatically"
    RESOLVED = "resolved", "Resolved by staff"
    ACCEPTED = "accepted", "Accepted by staff"


class Discrepancy(models.Model):
    """One difference between our record and the gateway's (or a record only one side has).

    About a payment (`payment`), or about a customer's saved payment method (`customer`, and `payment_method`
    when we have a row for it).
    """

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies")
    kind = models.CharField(max_length=32, choices=DiscrepancyKind.choices)
    state = models.CharField(max_length=16, choices=DiscrepancyState.choices, default=DiscrepancyState.OPEN)
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment_method = models.ForeignKey(
        "customers.PaymentMethod", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
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
        return f"{self.get_kind_display()} {self.gateway_reference or self.payment_id or self.payment_method_id}"
