"""Issue #20: a payment's e-mail and IP, stored idempotent responses and dead letters encrypted at rest; blind
indexes of the e-mail and IP (with created_at, for risk velocity) replace the indexes of the clear columns."""

from django.db import migrations, models

import config.encryption


def _ip_to_text(apps, schema_editor):
    # PostgreSQL's inet becomes text; SQLite (make run) already keeps the column as text of any length.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE payments_payment ALTER COLUMN customer_ip TYPE text USING host(customer_ip)")


def _ip_to_inet(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE payments_payment ALTER COLUMN customer_ip TYPE inet USING customer_ip::inet")


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0011_payment_dispute_amounts"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="payment", name="payment_email_created_idx"),
        migrations.RemoveIndex(model_name="payment", name="payment_ip_created_idx"),
        migrations.AlterField(
            model_name="payment",
            name="customer_email",
            field=config.encryption.EncryptedTextField(blank=True, default=""),
        ),
        # inet → text through host(): a plain cast would keep the mask ("203.0.113.9/32").
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(_ip_to_text, _ip_to_inet, elidable=False),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="payment",
                    name="customer_ip",
                    field=config.encryption.EncryptedTextField(
                        blank=True, help_text="IPv4 or IPv6, validated by the API.", null=True
                    ),
                )
            ],
        ),
        migrations.AddField(
            model_name="payment",
            name="customer_email_index",
            field=models.CharField(
                blank=True, default="", editable=False, help_text="Keyed blind index of the e-mail.", max_length=64
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="customer_ip_index",
            field=models.CharField(
                blank=True, default="", editable=False, help_text="Keyed blind index of the IP.", max_length=64
            ),
        ),
        migrations.AlterField(
            model_name="idempotencykey",
            name="response_body",
            field=config.encryption.EncryptedJSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="deadletter",
            name="body",
            field=config.encryption.EncryptedTextField(
                help_text="The message as received (card numbers masked), encrypted at rest."
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(fields=["customer_email_index", "created_at"], name="payment_email_index_idx"),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(fields=["customer_ip_index", "created_at"], name="payment_ip_index_idx"),
        ),
    ]
