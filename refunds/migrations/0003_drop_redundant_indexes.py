"""Indexes no query needs (issue #14): the payment's foreign-key index repeats the first column of
refund_payment_status_idx, and the ids' `_like` indexes serve only `LIKE 'x%'` (config/migration_ops.py).
"""

import django.db.models.deletion
from django.db import migrations, models

from config.migration_ops import drop_pattern_indexes, without_index


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0014_drop_redundant_indexes"),
        ("refunds", "0002_approve_refund_permission"),
    ]

    operations = [
        without_index(
            "refunds",
            "refund",
            "payment",
            models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="refunds",
                to="payments.payment",
            ),
        ),
        drop_pattern_indexes("refunds", "refund", "public_id", "gateway_reference"),
    ]
