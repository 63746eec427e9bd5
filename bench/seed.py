"""Seeding for the benchmarks: millions of rows (payments, customers) in one INSERT … SELECT generate_series."""

from django.db import connection
from django.db.models import NOT_PROVIDED, Model

from payments.models import Payment


def insert_payments(count: int, overrides: dict[str, str]) -> None:
    """Insert `count` payments; `overrides` maps a column to an SQL expression of `n` (0 … count-1).

    Every other column takes the model's default, or NULL. `%%` stands for `%` in the expressions.
    """
    insert_rows(Payment, count, overrides)


def insert_rows(model: type[Model], count: int, overrides: dict[str, str]) -> None:
    """`insert_payments` for any model: one INSERT … SELECT over generate_series, then ANALYZE."""
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in overrides:
            values.append(overrides[field.attname])
        elif field.default is not NOT_PROVIDED:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
        elif field.null:
            values.append("NULL")
        else:
            raise RuntimeError(f"No value for {model.__name__}.{field.name}")
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - names from our own model
        f"SELECT {', '.join(values)} FROM generate_series(0, %s) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count - 1])
        cursor.execute(f"ANALYZE {model._meta.db_table}")
