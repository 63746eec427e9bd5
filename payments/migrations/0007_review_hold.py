"""The review hold and the risk check's verdict become fields of the payment (the core owns the hold)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_event_moves_to_events")]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="risk_score",
            field=models.PositiveSmallIntegerField(
                blank=True,
                editable=False,
                help_text="What the risk check scored (0-100) when it was created.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="risk_level",
            field=models.CharField(blank=True, default="", editable=False, max_length=16),
        ),
        migrations.AddField(
            model_name="payment",
            name="review_state",
            field=models.CharField(
                blank=True,
                choices=[("", "No review"), ("pending", "Pending"), ("approved", "Approved"), ("rejected", "Rejected")],
                default="",
                editable=False,
                help_text="The review hold: pending blocks capture until staff decide; cancel or failure ends it.",
                max_length=16,
                verbose_name="review",
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="review_reasons",
            field=models.JSONField(
                blank=True, default=list, editable=False, help_text="Why it was held (the risk check's reason codes)."
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(("review_state", "pending")), fields=["created_at"], name="payment_held_idx"
            ),
        ),
    ]
