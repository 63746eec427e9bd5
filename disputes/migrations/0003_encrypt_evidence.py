"""Issue #20: a dispute's evidence texts (the customer's name, e-mail, addresses) encrypted at rest; those stored
in clear are encrypted (1000 a batch). Reversible: the reverse writes the clear JSON back before the column
returns to jsonb."""

from django.db import migrations

import config.encryption
from payments.migrations._encryption import decrypt_columns, encrypt_columns


def encrypt(apps, schema_editor):
    encrypt_columns(apps.get_model("disputes", "Dispute"), json_columns=("evidence",))


def decrypt(apps, schema_editor):
    decrypt_columns(apps.get_model("disputes", "Dispute"), columns=("evidence",), schema_editor=schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("disputes", "0002_staff_permissions"),
        ("payments", "0013_encrypt_existing_payments"),
    ]

    operations = [
        migrations.AlterField(
            model_name="dispute",
            name="evidence",
            field=config.encryption.EncryptedJSONField(
                blank=True, default=dict, help_text="The evidence text fields saved at the gateway (encrypted at rest)."
            ),
        ),
        migrations.RunPython(encrypt, decrypt, elidable=False),
    ]
