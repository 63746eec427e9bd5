"""The Event model leaves the payments app for `events` (state only: the table and its rows stay)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_risk_indexes")]
    # events.0001 takes the model over; it must find the table and this app's state without it.
    run_before = [("events", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Event")]),
    ]
