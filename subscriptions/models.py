"""Prices (the gateway's catalog, mirrored), subscriptions, their status history, invoices and invoice lines.

Money is in integer minor units of the row's currency. Subscriptions and invoices are written only by
`subscriptions.services`; a status changes only through `subscriptions.status` (history and event in one
transaction). Each gateway object is stored once: its gateway reference is unique.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from payments.models import ChangeSource, make_public_id
from subscriptions.states import InvoiceStatus, SubscriptionStatus

INTERVALS = (("day", "Day"), ("week", "Week"), ("month", "Month"), ("year", "Year"))


def new_subscription_id() -> str:
    return make_public_id("sub_")


def new_invoice_id() -> str:
    return make_public_id("in_")


class Product(models.Model):
    gateway = models.CharField(max_length=32)
    reference = models.CharField("gateway ID", max_length=255, help_text="The gateway's product (prod_…).")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "reference"], name="product_unique_reference")]

    def __str__(self) -> str:
        return self.name


class Price(models.Model):
    """A recurring price of the gateway's catalog; its `price_…` id is the gateway's."""

    gateway = models.CharField(max_length=32)
    reference = models.CharField("ID", max_length=255, help_text="The gateway's price (price_…), also our id.")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    unit_amount = models.BigIntegerField(help_text="Minor units of the currency.")
    currency = models.CharField(max_length=3)
    interval = models.CharField(max_length=8, choices=INTERVALS)
    interval_count = models.PositiveIntegerField(default=1)
    trial_period_days = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-active", "-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["gateway", "reference"], name="price_unique_reference"),
            models.CheckConstraint(condition=Q(unit_amount__gte=0), name="price_unit_amount_not_negative"),
            models.CheckConstraint(condition=Q(interval_count__gte=1), name="price_interval_count_positive"),
        ]
        indexes = [models.Index(fields=["-active", "-created_at", "-id"], name="price_list_idx")]
        permissions = [("create_price", "Can create a price at the gateway")]

    def __str__(self) -> str:
        return self.reference


class Subscription(models.Model):
    public_id = models.CharField("ID", max_length=40, unique=True, default=new_subscription_id, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions", verbose_name="API client"
    )
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="subscriptions")
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="subscriptions")
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    default_payment_method = models.ForeignKey(
        "customers.PaymentMethod", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    latest_invoice = models.ForeignKey(
        "subscriptions.Invoice", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField("gateway ID", max_length=255, unique=True)
    metadata = models.JSONField(default=dict, blank=True)
    gateway_created_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=SubscriptionStatus.values), name="subscription_status_valid"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=10000), name="subscription_quantity_range"
            ),
        ]
        indexes = [
            models.Index(fields=["client", "-created_at", "-id"], name="subscription_client_idx"),
            models.Index(fields=["customer", "-created_at", "-id"], name="subscription_customer_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="subscription_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="subscription_created_idx"),
            # Reconciliation's window is the gateway's creation time.
            models.Index(fields=["gateway_created_at"], name="subscription_gw_created_idx"),
        ]
        permissions = [("cancel_subscription", "Can cancel a subscription (with a reason)")]

    def __str__(self) -> str:
        return self.public_id


class SubscriptionStatusChange(models.Model):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
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


class Invoice(models.Model):
    public_id = models.CharField("ID", max_length=40, unique=True, default=new_invoice_id, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invoices", verbose_name="API client"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="invoices")
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices)
    currency = models.CharField(max_length=3)
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_remaining = models.BigIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True, default="")
    payment_intent_reference = models.CharField(max_length=255, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField("gateway ID", max_length=255, unique=True)
    gateway_created_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_remaining__gte=0), name="invoice_amounts_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["client", "-created_at", "-id"], name="invoice_client_idx"),
            models.Index(fields=["subscription", "-created_at", "-id"], name="invoice_subscription_idx"),
            models.Index(fields=["customer", "-created_at", "-id"], name="invoice_customer_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="invoice_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="invoice_created_idx"),
        ]
        permissions = [
            ("retry_invoice", "Can retry an open invoice now (with a reason)"),
            ("mark_invoice_uncollectible", "Can mark an open invoice uncollectible (with a reason)"),
        ]

    def __str__(self) -> str:
        return self.public_id


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    description = models.CharField(max_length=500, blank=True, default="")
    amount = models.BigIntegerField(help_text="Minor units; negative for a proration credit.")
    quantity = models.PositiveIntegerField(default=1)
    price_reference = models.CharField(max_length=255, blank=True, default="")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.description
