"""Events carry their owner (the API client) and their subject instead of a foreign key to a payment.

The events app is a ground floor that every aggregate writes to; a foreign key to payments would
point upwards. Existing rows are filled from their payment in one UPDATE.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

BACKFILL = """
UPDATE payments_event
   SET client_id = payments_payment.client_id,
       subject_type = 'payment',
       subject_id = payments_payment.public_id
  FROM payments_payment
 WHERE payments_payment.id = payments_event.payment_id
"""


def backfill(apps, schema_editor):  # noqa: ANN001, ARG001
    schema_editor.execute(BACKFILL)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="client",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="API client",
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="subject_type",
            field=models.CharField(default="", help_text="What the event is about: payment, …", max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="event",
            name="subject_id",
            field=models.CharField(
                default="",
                help_text="The public id of the subject (pay_…); its events are published in order.",
                max_length=40,
                verbose_name="subject",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="event",
            name="client",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="API client",
            ),
        ),
        migrations.RemoveIndex(model_name="event", name="event_payment_idx"),
        migrations.RemoveField(model_name="event", name="payment_id"),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["client", "transaction_id", "sequence"], name="event_client_feed_idx"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["subject_id", "sequence"], name="event_subject_idx"),
        ),
    ]
