"""Disputes are reconciled too: their discrepancy kinds, the dispute a discrepancy is about, the `disputes` scope and
a run's counts. Existing runs keep their scope."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("disputes", "0001_initial"),  # the Dispute table only
        ("reconciliation", "0003_subscriptions"),
    ]

    operations = [
        migrations.AddField(
            model_name="discrepancy",
            name="dispute",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="disputes.dispute",
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="disputes_matched",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="gateway_disputes",
            field=models.PositiveIntegerField(
                default=0, help_text="Disputes the gateway listed as created in the window."
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="our_disputes",
            field=models.PositiveIntegerField(default=0, help_text="Our disputes created in the window."),
        ),
        migrations.AlterField(
            model_name="discrepancy",
            name="kind",
            field=models.CharField(
                choices=[
                    ("missing_here", "Missing here"),
                    ("missing_at_gateway", "Missing at the gateway"),
                    ("amount", "Amount differs"),
                    ("currency", "Currency differs"),
                    ("status", "Status differs"),
                    ("captured", "Captured amount differs"),
                    ("refunded", "Refunded amount differs"),
                    ("method_missing_here", "Method missing here"),
                    ("method_missing_at_gateway", "Method missing at gateway"),
                    ("method_detached_here", "Method detached only here"),
                    ("subscription_missing_here", "Subscription missing here"),
                    ("subscription_missing_at_gateway", "Subscription only here"),
                    ("subscription_status_mismatch", "Subscription status"),
                    ("subscription_fields_mismatch", "Subscription terms differ"),
                    ("invoice_missing_here", "Invoice missing here"),
                    ("invoice_missing_at_gateway", "Invoice only here"),
                    ("invoice_status_mismatch", "Invoice status differs"),
                    ("invoice_amount_mismatch", "Invoice amounts differ"),
                    ("dispute_missing_here", "Dispute missing here"),
                    ("dispute_missing_at_gateway", "Dispute only here"),
                    ("dispute_status_mismatch", "Dispute status differs"),
                    ("dispute_amount_mismatch", "Dispute amount differs"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="reconciliationrun",
            name="scope",
            field=models.CharField(
                choices=[
                    ("all", "Payments, saved methods, subscriptions and disputes"),
                    ("payments", "Payments"),
                    ("payment_methods", "Saved payment methods"),
                    ("subscriptions", "Subscriptions and invoices"),
                    ("disputes", "Disputes"),
                ],
                default="payments",
                help_text="Payments of the window, customers' saved payment methods, the window's subscriptions or disputes, or all.",
                max_length=16,
            ),
        ),
    ]
