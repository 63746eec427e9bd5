"""Events get `schema_version` (1), and the events written before issue #20 lose what no event may carry.

Those events held the payment's `client_secret` and `customer_email` (payment and refund-of-payment events,
`payment.dispute_opened`) and the invoice's `hosted_invoice_url`, at the top of their object; customer and
dispute events never held personal data. The keys are removed in batches of sequence numbers (one short
UPDATE each, outside one long transaction), so a large outbox is cleaned online; the relay and the feed
serve the cleaned rows, and a replay republishes them.
"""

from django.db import migrations, models

# The keys the renderers before issue #20 put in an event's object (events.payloads.FORBIDDEN_KEYS holds them).
LEAKED_KEYS = ["client_secret", "customer_email", "hosted_invoice_url"]
BATCH = 10_000

SCRUB_SQL = """
UPDATE payments_event SET data = data - %(keys)s::text[]
 WHERE sequence >= %(low)s AND sequence < %(high)s AND jsonb_typeof(data) = 'object' AND data ?| %(keys)s::text[]
"""


def scrub(apps, schema_editor):  # noqa: ANN001, ARG001
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(sequence), max(sequence) FROM payments_event")
        low, high = cursor.fetchone()
    if low is None:
        return
    if connection.vendor != "postgresql":  # SQLite in development: row by row, through the model
        event_model = apps.get_model("events", "Event")
        for event in event_model.objects.all().iterator():
            if isinstance(event.data, dict) and any(key in event.data for key in LEAKED_KEYS):
                event.data = {key: value for key, value in event.data.items() if key not in LEAKED_KEYS}
                event.save(update_fields=["data"])
        return
    for start in range(low, high + 1, BATCH):
        with connection.cursor() as cursor:
            cursor.execute(SCRUB_SQL, {"keys": LEAKED_KEYS, "low": start, "high": start + BATCH})


class Migration(migrations.Migration):
    atomic = False  # each batch commits on its own: no lock held on the whole outbox

    dependencies = [("events", "0002_client_and_subject")]

    operations = [
        migrations.AddField(
            model_name="event",
            name="schema_version",
            field=models.PositiveSmallIntegerField(
                default=1, help_text="The version of the event object's shape the event was written with."
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="data",
            field=models.JSONField(
                help_text="The object as events render it at the time (no secrets, no personal data)."
            ),
        ),
        migrations.RunPython(scrub, migrations.RunPython.noop, elidable=True),
    ]
