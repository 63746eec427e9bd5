"""Issue #20: a customer's e-mail and name encrypted at rest, and a blind index of the e-mail for exact search."""

from django.db import migrations, models

import config.encryption


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_token_reference_index"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="customer", name="customer_email_idx"),
        migrations.AlterField(
            model_name="customer",
            name="email",
            field=config.encryption.EncryptedTextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="customer",
            name="name",
            field=config.encryption.EncryptedTextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="customer",
            name="email_index",
            field=models.CharField(
                blank=True, default="", editable=False, help_text="Keyed blind index of the e-mail.", max_length=64
            ),
        ),
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(fields=["email_index"], name="customer_email_index_idx"),
        ),
    ]
