"""What the data migrations of issue #20 share: encrypt a model's columns in place, in batches, and back.

Not a migration (Django's loader skips modules starting with `_`). Each batch is 1000 rows by primary key, read
with the columns' raw text (a CAST, so the field does not decrypt it) and written with `bulk_update`. Only values
still in clear are sealed, through the historical model's own field: its context (`app_label.model.field`, the
additional authenticated data) is the live field's, since both are `config.encryption` fields of the same model.
A run that stopped half-way resumes where it stopped; a second run changes nothing.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import models
from django.db.models.functions import Cast

from config.encryption import EncryptedMixin, is_encrypted

BATCH = 1000
RAW = "_raw_{}"


def _batches(model: type[models.Model], columns: Sequence[str]) -> Iterator[list[Any]]:
    rows = model._default_manager.annotate(**{RAW.format(name): Cast(name, models.TextField()) for name in columns})
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            return
        last = batch[-1].pk
        yield batch


def _field(model: type[models.Model], name: str) -> EncryptedMixin:
    field = model._meta.get_field(name)
    if not isinstance(field, EncryptedMixin):
        raise TypeError(f"{model._meta.label}.{name} is not an encrypted field")
    return field


def encrypt_columns(
    model: type[models.Model],
    *,
    text: Sequence[str] = (),
    json_columns: Sequence[str] = (),
    indexes: dict[str, tuple[str, Callable[[str | None], str]]] | None = None,
) -> int:
    """Seal the clear values of `text` and `json_columns`; fill each index column from its source's clear value.

    `indexes` maps an index column to (its source column, its function), e.g. {"email_index": ("email",
    email_index)}. Returns the rows written.
    """
    indexes = indexes or {}
    columns = [*text, *json_columns]
    written = 0
    for batch in _batches(model, columns):
        changed = []
        for row in batch:
            dirty = False
            for name in text:
                raw = getattr(row, RAW.format(name))
                if raw and not is_encrypted(raw):
                    setattr(row, name, _field(model, name).seal(raw))
                    dirty = True
                else:
                    setattr(row, name, raw)  # a sealed value is written back as it is (the field passes it through)
            for name in json_columns:
                raw = getattr(row, RAW.format(name))
                if raw is not None and not is_encrypted(raw):
                    setattr(row, name, json.loads(raw))  # the field seals its JSON text on write
                    dirty = True
            for index, (source, function) in indexes.items():
                raw = getattr(row, RAW.format(source))
                clear = _field(model, source).open(raw) if is_encrypted(raw) else raw
                value = function(clear)
                if getattr(row, index) != value:
                    setattr(row, index, value)
                    dirty = True
            if dirty:
                changed.append(row)
        if changed:
            model._default_manager.bulk_update(changed, fields=[*text, *json_columns, *indexes])
            written += len(changed)
    return written


def decrypt_columns(model: type[models.Model], *, columns: Sequence[str], schema_editor: Any) -> int:
    """Write the clear values back (the reverse: before the columns return to their old types). Raw SQL, since the
    fields would seal whatever they write. Returns the rows written."""
    table = schema_editor.quote_name(model._meta.db_table)
    pk = schema_editor.quote_name(model._meta.pk.column)
    written = 0
    for batch in _batches(model, columns):
        for name in columns:
            field = _field(model, name)
            column = schema_editor.quote_name(model._meta.get_field(name).column)
            updates = [
                (field.open(raw), row.pk) for row in batch if is_encrypted(raw := getattr(row, RAW.format(name)))
            ]
            if updates:
                with schema_editor.connection.cursor() as cursor:
                    cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", updates)  # noqa: S608
                written += len(updates)
    return written
