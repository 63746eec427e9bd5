"""Staff actions keep the digests of their personal values (issue #20): the chain covers those, not the values.

Existing rows get `{}`: they are chained, and verified, as they always were.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_move_reconciliation"),
    ]

    operations = [
        migrations.AddField(
            model_name="staffaction",
            name="personal_digests",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="SHA-256 of each personal value in before/after, by path: the chain covers these, not the values.",
            ),
        ),
    ]
