"""ReconciliationRun and Discrepancy move to the `reconciliation` app: removed from audit's state only.

Their tables (audit_reconciliationrun, audit_discrepancy), rows, indexes and constraints stay as they
are; reconciliation/migrations/0001_initial.py takes the models over in state (same db_table) and
renames their content types, so permissions, group grants and log entries follow them.

After accounts/0002_staff_groups: on a fresh database that migration grants `run_reconciliation_fix`
and `change_discrepancy` while the models are still audit's (it knows their former label), and the
content type rename then carries the grants over, as it does on an existing database.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Discrepancy"),
                migrations.DeleteModel(name="ReconciliationRun"),
            ],
            database_operations=[],
        ),
    ]
