"""Subscriptions and their invoices are reconciled too: their discrepancy kinds, the subscription and invoice a
discrepancy is about, the `subscriptions` scope and a run's counts. Existing runs keep their scope."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0002_payment_methods"),
        ("subscriptions", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="discrepancy",
            name="invoice",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="subscriptions.invoice",
            ),
        ),
        migrations.AddField(
            model_name="discrepancy",
            name="subscription",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="subscriptions.subscription",
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="gateway_invoices",
            field=models.PositiveIntegerField(default=0, help_text="The listed subscriptions' invoices."),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="gateway_subscriptions",
            field=models.PositiveIntegerField(
                default=0, help_text="Subscriptions the gateway listed as created in the window."
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="invoices_matched",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="our_invoices",
            field=models.PositiveIntegerField(default=0, help_text="Our invoices of those subscriptions."),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="our_subscriptions",
            field=models.PositiveIntegerField(default=0, help_text="Our subscriptions created in the window."),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="subscriptions_matched",
            field=models.PositiveIntegerField(default=0),
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
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="reconciliationrun",
            name="scope",
            field=models.CharField(
                choices=[
                    ("all", "Payments, saved methods and subscriptions"),
                    ("payments", "Payments"),
                    ("payment_methods", "Saved payment methods"),
                    ("subscriptions", "Subscriptions and invoices"),
                ],
                default="payments",
                help_text="Payments of the window, customers' saved payment methods, the window's subscriptions, or all.",
                max_length=16,
            ),
        ),
    ]
