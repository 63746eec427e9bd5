"""Customers of a storefront (by the storefront's own `customer_id`), their gateway customers and saved methods.

Card data never reaches this service: a saved method keeps only what the gateway says is safe to show
(brand, last 4 digits, expiry month and year, funding, country, fingerprint). The database refuses
anything else where a constraint can say it: `last4` is exactly four digits, no column is wide enough
for a card number, the expiry is a month of 1-12 and a plausible year.
"""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.encryption import EncryptedTextField
from config.encryption import email_index as email_blind_index
from payments.models import keep_indexes, make_public_id


def new_customer_id() -> str:
    return make_public_id("cu_")


def new_payment_method_id() -> str:
    return make_public_id("pmt_")


class PaymentMethodStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DETACHED = "detached", "Detached"


class Customer(models.Model):
    """A storefront's customer, named by the storefront's own `customer_id` (unique per API client)."""

    public_id = models.CharField("ID", max_length=40, unique=True, default=new_customer_id, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="customers", verbose_name="API client"
    )
    customer_id = models.CharField("storefront's customer ID", max_length=255)
    # Encrypted at rest (config.encryption); found by e-mail through `email_index`, which `save()` keeps in step.
    email = EncryptedTextField(blank=True, default="")
    name = EncryptedTextField(blank=True, default="")
    email_index = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="Keyed blind index of the e-mail."
    )
    metadata = models.JSONField(default=dict, blank=True)
    default_payment_method = models.ForeignKey(
        "customers.PaymentMethod",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The saved method charged when none is named.",
    )
    incarnation = models.PositiveIntegerField(
        default=0, editable=False, help_text="Gateway customers deleted so far: a new one gets new gateway keys."
    )
    detach_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Methods detached so far: attaching a token again gets a new gateway key."
    )
    deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its gateway customer was deleted (the Stripe Dashboard); a PUT makes it again.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["client", "customer_id"], name="customer_unique_client_customer_id"),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="customer_created_idx"),
            models.Index(fields=["customer_id"], name="customer_customer_id_idx"),
            models.Index(fields=["email_index"], name="customer_email_index_idx"),
        ]

    def __str__(self) -> str:
        return self.public_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The blind index follows the e-mail on every write that writes the e-mail (the API, the gateway's
        # sync, erasure): exact search by e-mail reads only the index.
        kwargs["update_fields"] = keep_indexes(self, kwargs.get("update_fields"), BLIND_INDEXES)
        super().save(*args, **kwargs)


BLIND_INDEXES = (("email", "email_index", email_blind_index),)


class CustomerGatewayToken(models.Model):
    """The gateway's own customer (Stripe: `cus_…`) of one of our customers, per gateway."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="gateway_tokens")
    gateway = models.CharField(max_length=32)
    reference = models.CharField("gateway customer ID", max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "gateway"], name="customer_token_unique_customer_gateway"),
            models.UniqueConstraint(fields=["gateway", "reference"], name="customer_token_unique_reference"),
        ]
        # the back office finds a customer by the gateway's id alone, whatever the gateway
        indexes = [models.Index(fields=["reference"], name="customer_token_reference_idx")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.reference}"


class PaymentMethod(models.Model):
    """A saved, tokenized payment method of a customer. Only `customers.services` writes it."""

    public_id = models.CharField("ID", max_length=40, unique=True, default=new_payment_method_id, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_methods")
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField("gateway ID", max_length=255, help_text="The gateway's saved method (pm_…).")
    type = models.CharField(max_length=16, default="card")
    brand = models.CharField(max_length=16, blank=True, default="")
    last4 = models.CharField("last 4 digits", max_length=4)
    exp_month = models.PositiveSmallIntegerField("expiry month")
    exp_year = models.PositiveSmallIntegerField("expiry year")
    funding = models.CharField(max_length=16, blank=True, default="unknown")
    country = models.CharField(max_length=2, blank=True, default="")
    fingerprint = models.CharField(
        max_length=32, blank=True, default="", help_text="The gateway's fingerprint: the same card, the same value."
    )
    status = models.CharField(max_length=16, choices=PaymentMethodStatus.choices, default=PaymentMethodStatus.ACTIVE)
    detached_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_reference"], name="payment_method_unique_reference"),
            models.CheckConstraint(condition=Q(last4__regex=r"^[0-9]{4}$"), name="payment_method_last4_four_digits"),
            models.CheckConstraint(
                condition=Q(exp_month__gte=1) & Q(exp_month__lte=12), name="payment_method_exp_month_range"
            ),
            models.CheckConstraint(
                condition=Q(exp_year__gte=2000) & Q(exp_year__lte=2200), name="payment_method_exp_year_range"
            ),
            models.CheckConstraint(
                condition=Q(status__in=PaymentMethodStatus.values), name="payment_method_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=PaymentMethodStatus.ACTIVE, detached_at__isnull=True)
                | Q(status=PaymentMethodStatus.DETACHED, detached_at__isnull=False),
                name="payment_method_detached_at_iff_detached",
            ),
            # Nothing but the card's safe details: short words and codes, never a run of digits a card number needs.
            models.CheckConstraint(condition=Q(brand__regex=r"^[a-z_]*$"), name="payment_method_brand_word"),
            models.CheckConstraint(condition=Q(funding__regex=r"^[a-z]*$"), name="payment_method_funding_word"),
            models.CheckConstraint(condition=Q(country__regex=r"^([A-Z]{2})?$"), name="payment_method_country_code"),
            models.CheckConstraint(condition=Q(type__regex=r"^[a-z_]+$"), name="payment_method_type_word"),
            models.CheckConstraint(
                condition=~Q(fingerprint__regex=r"[0-9]{13}"), name="payment_method_fingerprint_not_a_number"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "status", "-created_at"], name="payment_method_customer_idx"),
            models.Index(fields=["fingerprint"], condition=~Q(fingerprint=""), name="payment_method_fingerprint_idx"),
        ]
        permissions = [("detach_paymentmethod", "Can detach a customer's saved payment method (with a reason)")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_active(self) -> bool:
        return self.status == PaymentMethodStatus.ACTIVE
