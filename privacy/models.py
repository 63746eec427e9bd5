"""The record of each erasure (ids only: what was erased, by whom, when) and the retention task's cursor."""

from django.conf import settings
from django.db import models


class CustomerErasure(models.Model):
    """One erasure of a customer's personal data. It keeps ids only, never the data it erased.

    `references` are the gateway's ids of the customer's objects (cus_…, pi_…, pm_…, sub_…, in_…, du_…), so that
    webhook payloads arriving after the erasure (Stripe's `customer.deleted` among them) are redacted too.
    """

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="erasures")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, help_text="api, admin or worker (a management command).")
    reason = models.TextField()
    references = models.JSONField(default=list, blank=True, help_text="The gateway's ids of the customer's objects.")
    counts = models.JSONField(default=dict, blank=True, help_text="Rows changed, by kind.")
    erased_at = models.DateTimeField()

    class Meta:
        ordering = ("-erased_at", "-id")
        indexes = [models.Index(fields=["-erased_at"], name="erasure_erased_idx")]
        permissions = [
            ("erase_customer", "Can ask for a customer's personal data to be erased (four eyes)"),
            ("export_customer", "Can export everything held about a customer"),
        ]

    def __str__(self) -> str:
        return f"erasure of {self.customer_id} at {self.erased_at:%Y-%m-%d %H:%M}"


class RetentionCursor(models.Model):
    """How far the webhook payload purge has gone (received time and id of the last row it purged)."""

    name = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField()
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.received_at.isoformat()} #{self.last_id}"
