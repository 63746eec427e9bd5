"""Reconciliation results: a run per compared window and the discrepancies it found (tables kept from `audit`)."""

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    CLEAN = "clean", "Clean"
    UNRESOLVED = "unresolved", "Discrepancies open"
    FAILED = "failed", "Failed"


class RunScope(models.TextChoices):
    """What a run compared: payments (the intents created in its window), saved payment methods, subscriptions
    (those created in its window, with their invoices), disputes (those created in its window), or all four."""

    ALL = "all", "Payments, saved methods, subscriptions and disputes"
    PAYMENTS = "payments", "Payments"
    PAYMENT_METHODS = "payment_methods", "Saved payment methods"
    SUBSCRIPTIONS = "subscriptions", "Subscriptions and invoices"
    DISPUTES = "disputes", "Disputes"

    @property
    def covers_payments(self) -> bool:
        return self in (RunScope.ALL, RunScope.PAYMENTS)

    @property
    def covers_payment_methods(self) -> bool:
        return self in (RunScope.ALL, RunScope.PAYMENT_METHODS)

    @property
    def covers_subscriptions(self) -> bool:
        return self in (RunScope.ALL, RunScope.SUBSCRIPTIONS)

    @property
    def covers_disputes(self) -> bool:
        return self in (RunScope.ALL, RunScope.DISPUTES)


class ReconciliationRun(models.Model):
    """One comparison of our records with the gateway's: payments and subscriptions for a time window, saved
    methods as they are now."""

    gateway = models.CharField(max_length=32)
    scope = models.CharField(
        max_length=16,
        choices=RunScope.choices,
        default=RunScope.PAYMENTS,  # the runs made before saved methods were compared
        help_text="Payments of the window, customers' saved payment methods, the window's subscriptions or disputes, "
        "or all.",
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
    gateway_subscriptions = models.PositiveIntegerField(
        default=0, help_text="Subscriptions the gateway listed as created in the window."
    )
    our_subscriptions = models.PositiveIntegerField(default=0, help_text="Our subscriptions created in the window.")
    subscriptions_matched = models.PositiveIntegerField(default=0)
    gateway_invoices = models.PositiveIntegerField(default=0, help_text="The listed subscriptions' invoices.")
    our_invoices = models.PositiveIntegerField(default=0, help_text="Our invoices of those subscriptions.")
    invoices_matched = models.PositiveIntegerField(default=0)
    gateway_disputes = models.PositiveIntegerField(
        default=0, help_text="Disputes the gateway listed as created in the window."
    )
    our_disputes = models.PositiveIntegerField(default=0, help_text="Our disputes created in the window.")
    disputes_matched = models.PositiveIntegerField(default=0)
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
    # subscriptions created in the window, and their invoices (labels fit the command's 26-column table)
    SUBSCRIPTION_MISSING_HERE = "subscription_missing_here", "Subscription missing here"
    SUBSCRIPTION_MISSING_AT_GATEWAY = "subscription_missing_at_gateway", "Subscription only here"
    SUBSCRIPTION_STATUS_MISMATCH = "subscription_status_mismatch", "Subscription status"
    SUBSCRIPTION_FIELDS_MISMATCH = "subscription_fields_mismatch", "Subscription terms differ"
    INVOICE_MISSING_HERE = "invoice_missing_here", "Invoice missing here"
    INVOICE_MISSING_AT_GATEWAY = "invoice_missing_at_gateway", "Invoice only here"
    INVOICE_STATUS_MISMATCH = "invoice_status_mismatch", "Invoice status differs"
    INVOICE_AMOUNT_MISMATCH = "invoice_amount_mismatch", "Invoice amounts differ"
    # disputes created in the window
    DISPUTE_MISSING_HERE = "dispute_missing_here", "Dispute missing here"
    DISPUTE_MISSING_AT_GATEWAY = "dispute_missing_at_gateway", "Dispute only here"
    DISPUTE_STATUS_MISMATCH = "dispute_status_mismatch", "Dispute status differs"
    DISPUTE_AMOUNT_MISMATCH = "dispute_amount_mismatch", "Dispute amount differs"


PAYMENT_METHOD_KINDS = frozenset(
    {
        DiscrepancyKind.METHOD_MISSING_HERE,
        DiscrepancyKind.METHOD_MISSING_AT_GATEWAY,
        DiscrepancyKind.METHOD_DETACHED_HERE,
    }
)


SUBSCRIPTION_KINDS = frozenset(
    {
        DiscrepancyKind.SUBSCRIPTION_MISSING_HERE,
        DiscrepancyKind.SUBSCRIPTION_MISSING_AT_GATEWAY,
        DiscrepancyKind.SUBSCRIPTION_STATUS_MISMATCH,
        DiscrepancyKind.SUBSCRIPTION_FIELDS_MISMATCH,
        DiscrepancyKind.INVOICE_MISSING_HERE,
        DiscrepancyKind.INVOICE_MISSING_AT_GATEWAY,
        DiscrepancyKind.INVOICE_STATUS_MISMATCH,
        DiscrepancyKind.INVOICE_AMOUNT_MISMATCH,
    }
)


DISPUTE_KINDS = frozenset(
    {
        DiscrepancyKind.DISPUTE_MISSING_HERE,
        DiscrepancyKind.DISPUTE_MISSING_AT_GATEWAY,
        DiscrepancyKind.DISPUTE_STATUS_MISMATCH,
        DiscrepancyKind.DISPUTE_AMOUNT_MISMATCH,
    }
)


def _is_covered(kind: DiscrepancyKind, covered: RunScope) -> bool:
    if kind in DISPUTE_KINDS:
        return covered.covers_disputes
    if kind in PAYMENT_METHOD_KINDS:
        return covered.covers_payment_methods
    if kind in SUBSCRIPTION_KINDS:
        return covered.covers_subscriptions
    return covered.covers_payments


def kinds_of(scope: str) -> list[DiscrepancyKind]:
    """The kinds of discrepancy a run of this scope can find, in declaration order."""
    covered = RunScope(scope)
    return [kind for kind in DiscrepancyKind if _is_covered(kind, covered)]


class DiscrepancyState(models.TextChoices):
    OPEN = "open", "Open"
    FIXED = "fixed", "Fixed automatically"
    RESOLVED = "resolved", "Resolved by staff"
    ACCEPTED = "accepted", "Accepted by staff"


class Discrepancy(models.Model):
    """One difference between our record and the gateway's (or a record only one side has).

    About a payment (`payment`), about a customer's saved payment method (`customer`, and `payment_method`
    when we have a row for it), about a subscription or one of its invoices (`subscription`, and `invoice`
    when we have a row for it), or about a dispute (`dispute` when we have a row for it, and its `payment`).
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
    subscription = models.ForeignKey(
        "subscriptions.Subscription", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    invoice = models.ForeignKey(
        "subscriptions.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    dispute = models.ForeignKey("disputes.Dispute", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
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
