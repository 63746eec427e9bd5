"""Issue #20: the raw Stripe payloads (billing details) encrypted at rest; those stored in clear are encrypted
(1000 a batch). Reversible: the reverse writes the clear bodies back."""

from django.db import migrations

import config.encryption
from payments.migrations._encryption import decrypt_columns, encrypt_columns


def encrypt(apps, schema_editor):
    encrypt_columns(apps.get_model("webhooks", "WebhookEvent"), text=("body",))


def decrypt(apps, schema_editor):
    decrypt_columns(apps.get_model("webhooks", "WebhookEvent"), columns=("body",), schema_editor=schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("payments", "0013_encrypt_existing_payments"),  # the helper's module is there; payments first, as ever
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookevent",
            name="body",
            field=config.encryption.EncryptedTextField(
                help_text="The event exactly as received (the signed body for a webhook delivery), encrypted at rest: "
                "it carries billing details."
            ),
        ),
        migrations.RunPython(encrypt, decrypt, elidable=False),
    ]
