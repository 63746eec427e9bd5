"""Issue #20: the customers stored in clear are encrypted (1000 a batch) and get their e-mail's blind index.

Reversible: the reverse writes the clear values back before 0004's reverse turns the columns back into
varchar (a value longer than the old max_length would stop it: none is, the API capped them).
"""

from django.db import migrations

from config.encryption import email_index
from payments.migrations._encryption import decrypt_columns, encrypt_columns


def encrypt(apps, schema_editor):
    encrypt_columns(
        apps.get_model("customers", "Customer"),
        text=("email", "name"),
        indexes={"email_index": ("email", email_index)},
    )


def decrypt(apps, schema_editor):
    decrypt_columns(apps.get_model("customers", "Customer"), columns=("email", "name"), schema_editor=schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_encrypt_personal_data"),
    ]

    operations = [migrations.RunPython(encrypt, decrypt, elidable=False)]
