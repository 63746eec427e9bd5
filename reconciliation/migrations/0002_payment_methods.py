"""Saved payment methods are reconciled too: their discrepancy kinds, the customer and method a discrepancy is
about, and a run's scope and counts. Existing runs compared payments only (their scope's default)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
        ("reconciliation", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="discrepancy",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="customers.customer",
            ),
        ),
        migrations.AddField(
            model_name="discrepancy",
            name="payment_method",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="customers.paymentmethod",
            ),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="customers_compared",
            field=models.PositiveIntegerField(default=0, help_text="Gateway customers whose methods were listed."),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="gateway_payment_methods",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="our_payment_methods",
            field=models.PositiveIntegerField(default=0, help_text="Our active saved methods compared."),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="payment_methods_matched",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="reconciliationrun",
            name="scope",
            field=models.CharField(
                choices=[
                    ("all", "Payments and saved methods"),
                    ("payments", "Payments"),
                    ("payment_methods", "Saved payment methods"),
                ],
                default="payments",
                help_text="Payments of the window, customers' saved payment methods, or both.",
                max_length=16,
            ),
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
                ],
                max_length=32,
            ),
        ),
    ]
