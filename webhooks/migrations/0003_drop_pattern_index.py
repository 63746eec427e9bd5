"""The Stripe event id's `_like` index serves only `LIKE 'x%'`; the id is looked up exactly (issue #14)."""

from django.db import migrations

from config.migration_ops import drop_pattern_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_encrypt_webhook_bodies"),
    ]

    operations = [
        drop_pattern_indexes("webhooks", "webhookevent", "stripe_id"),
    ]
