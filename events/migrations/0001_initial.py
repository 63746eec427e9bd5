"""Take over the outbox table `payments_event` as it was (state only), and move its content type."""

import django.utils.timezone  # noqa: F401
from django.db import migrations, models

import events.db
import events.models


def move_content_type(apps, schema_editor):  # noqa: ANN001, ARG001
    """Permissions (and the groups holding them) follow the model to its new app."""
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.filter(app_label="payments", model="event").update(app_label="events")


def move_content_type_back(apps, schema_editor):  # noqa: ANN001, ARG001
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.filter(app_label="events", model="event").update(app_label="payments")


class Migration(migrations.Migration):
    initial = True
    dependencies = [("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Event",
                    fields=[
                        ("sequence", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "public_id",
                            models.CharField(
                                default=events.models.new_event_id,
                                editable=False,
                                max_length=40,
                                unique=True,
                                verbose_name="ID",
                            ),
                        ),
                        ("type", models.CharField(max_length=64)),
                        ("payment_id", models.BigIntegerField(null=True, blank=True)),
                        ("data", models.JSONField(help_text="The object as the API rendered it at the time.")),
                        (
                            "transaction_id",
                            models.BigIntegerField(db_default=events.db.CurrentTransactionId(), editable=False),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("published_at", models.DateTimeField(blank=True, null=True)),
                        ("publish_attempts", models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        "db_table": "payments_event",
                        "ordering": ("sequence",),
                        "indexes": [
                            models.Index(fields=["transaction_id", "sequence"], name="event_feed_idx"),
                            models.Index(fields=["payment_id", "sequence"], name="event_payment_idx"),
                            models.Index(fields=["type", "sequence"], name="event_type_idx"),
                            models.Index(
                                condition=models.Q(("published_at__isnull", True)),
                                fields=["sequence"],
                                name="event_unpublished_idx",
                            ),
                        ],
                    },
                ),
            ]
        ),
        migrations.RunPython(move_content_type, move_content_type_back, elidable=True),
    ]
