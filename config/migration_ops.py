"""Migration operations shared by the apps.

`drop_pattern_indexes`: on PostgreSQL, Django gives every unique or indexed `CharField` a second index,
`<name>_like` with `varchar_pattern_ops`, which serves only `LIKE 'x%'` (`startswith`). Our lookups of ids
are exact (the admin searches with `=`-style exact matches), so that index is never read, and every insert,
and every update that is not HOT, writes it. The operation drops it (and puts it back when unapplied); the
model state does not change, and other databases have no such index.

A later `AlterField` that changes such a field's type would create the `_like` index again (Django's
PostgreSQL schema editor does so for a `varchar` field); repeat the operation in that migration.

`without_index`: a foreign key's own index, when a composite index starts with the same column, only
costs writes. Setting `db_index=False` with a plain `AlterField` would make Django drop the foreign-key
constraint and add it back, which checks every row of the table under a lock; this changes the model
state the same way and only drops the index in the database.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations


def without_index(app_label: str, model_name: str, field_name: str, field: Any) -> migrations.SeparateDatabaseAndState:
    """`AlterField` to `field` (the same foreign key with `db_index=False`): in the database, only the index dropped."""

    def run(create: bool) -> Callable[[Any, Any], None]:
        def operation(apps: Any, schema_editor: Any) -> None:
            model = apps.get_model(app_label, model_name)
            column = model._meta.get_field(field_name)
            if create:
                schema_editor.execute(schema_editor._create_index_sql(model, fields=[column]))
                return
            index = schema_editor._create_index_name(model._meta.db_table, [column.column])
            schema_editor.execute(schema_editor._delete_index_sql(model, index))

        return operation

    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=field_name, field=field)],
        database_operations=[migrations.RunPython(run(create=False), run(create=True), elidable=False)],
    )


def drop_pattern_indexes(app_label: str, model_name: str, *field_names: str) -> migrations.RunPython:
    """Drop the `_like` (varchar_pattern_ops) index PostgreSQL has for each of the model's `field_names`."""

    def run(create: bool) -> Callable[[Any, Any], None]:
        def operation(apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor != "postgresql":
                return
            model = apps.get_model(app_label, model_name)
            for name in field_names:
                field = model._meta.get_field(name)
                if create:
                    schema_editor.execute(schema_editor._create_like_index_sql(model, field))
                    continue
                index = schema_editor._create_index_name(model._meta.db_table, [field.column], suffix="_like")
                schema_editor.execute(schema_editor._delete_index_sql(model, index))  # DROP INDEX IF EXISTS

        return operation

    return migrations.RunPython(run(create=False), run(create=True), elidable=False)
