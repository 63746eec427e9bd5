"""Indexes no query needs (issue #14): every insert, and every update that is not HOT, writes each of them.

The client's and the payment's own foreign-key indexes repeat the first column of a composite index
(payment_client_created_idx, idempotency_unique_client_key, status_change_payment_idx); the `_like` indexes
serve only `LIKE 'x%'`, and ids are looked up exactly (config/migration_ops.py).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from config.migration_ops import drop_pattern_indexes, without_index


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0013_encrypt_existing_payments"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        without_index(
            "payments",
            "idempotencykey",
            "client",
            models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="idempotency_keys",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        without_index(
            "payments",
            "payment",
            "client",
            models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="payments",
                to=settings.AUTH_USER_MODEL,
                verbose_name="API client",
            ),
        ),
        without_index(
            "payments",
            "paymentstatuschange",
            "payment",
            models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="status_changes",
                to="payments.payment",
            ),
        ),
        drop_pattern_indexes("payments", "payment", "public_id", "gateway_reference", "invoice"),
    ]
