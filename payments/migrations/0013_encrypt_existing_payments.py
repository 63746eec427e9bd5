"""Issue #20: payments, stored responses and dead letters kept in clear are encrypted (1000 a batch), and payments
get the blind indexes of their e-mail and IP.

Reversible: the reverse writes the clear values back before 0012's reverse turns the columns back into their old
types (the IP into inet, the response into jsonb).
"""

from django.db import migrations

from config.encryption import email_index, ip_index
from payments.migrations._encryption import decrypt_columns, encrypt_columns


def encrypt(apps, schema_editor):
    encrypt_columns(
        apps.get_model("payments", "Payment"),
        text=("customer_email", "customer_ip"),
        indexes={
            "customer_email_index": ("customer_email", email_index),
            "customer_ip_index": ("customer_ip", ip_index),
        },
    )
    encrypt_columns(apps.get_model("payments", "IdempotencyKey"), json_columns=("response_body",))
    encrypt_columns(apps.get_model("payments", "DeadLetter"), text=("body",))


def decrypt(apps, schema_editor):
    decrypt_columns(
        apps.get_model("payments", "Payment"), columns=("customer_email", "customer_ip"), schema_editor=schema_editor
    )
    decrypt_columns(
        apps.get_model("payments", "IdempotencyKey"), columns=("response_body",), schema_editor=schema_editor
    )
    decrypt_columns(apps.get_model("payments", "DeadLetter"), columns=("body",), schema_editor=schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0012_encrypt_personal_data"),
    ]

    operations = [migrations.RunPython(encrypt, decrypt, elidable=False)]
