"""The event log (outbox): one row per state change of any aggregate, written in the change's transaction."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.ids import random_token
from events.db import CurrentTransactionId
from events.payloads import SCHEMA_VERSION


def new_event_id() -> str:
    return "evt_" + random_token(24)


class Event(models.Model):
    """An event written in the same transaction as the change it describes (the outbox).

    `sequence` is handed out at insert time; `transaction_id` is the PostgreSQL transaction that
    wrote the row, so the feed can hold back rows of transactions that may still commit. The subject
    (a payment for payment and refund events) is the object whose events leave in order; `client`
    is the API client that owns it, so a feed shows a client only its own events.
    """

    sequence = models.BigAutoField(primary_key=True)
    public_id = models.CharField("ID", max_length=40, unique=True, default=new_event_id, editable=False)
    type = models.CharField(max_length=64)
    client = models.ForeignKey(  # indexed as the first column of event_client_feed_idx
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name="API client", db_index=False
    )
    subject_type = models.CharField(max_length=32, help_text="What the event is about: payment, …")
    subject_id = models.CharField(
        "subject", max_length=40, help_text="The public id of the subject (pay_…); its events are published in order."
    )
    data = models.JSONField(help_text="The object as events render it at the time (no secrets, no personal data).")
    schema_version = models.PositiveSmallIntegerField(
        default=SCHEMA_VERSION, help_text="The version of the event object's shape the event was written with."
    )
    transaction_id = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "payments_event"  # the table predates the events app; its rows stayed where they were
        ordering = ("sequence",)
        indexes = [
            models.Index(fields=["transaction_id", "sequence"], name="event_feed_idx"),
            models.Index(fields=["client", "transaction_id", "sequence"], name="event_client_feed_idx"),
            models.Index(fields=["subject_id", "sequence"], name="event_subject_idx"),
            models.Index(fields=["type", "sequence"], name="event_type_idx"),
            models.Index(fields=["sequence"], condition=Q(published_at__isnull=True), name="event_unpublished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"
