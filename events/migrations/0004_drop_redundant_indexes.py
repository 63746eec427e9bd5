"""Indexes no query needs (issue #14): the client's foreign-key index repeats the first column of
event_client_feed_idx, and the public id's `_like` index serves only `LIKE 'x%'` (config/migration_ops.py).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from config.migration_ops import drop_pattern_indexes, without_index


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0003_schema_version_and_safe_payloads"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        without_index(
            "events",
            "event",
            "client",
            models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="API client",
            ),
        ),
        drop_pattern_indexes("events", "event", "public_id"),
    ]
