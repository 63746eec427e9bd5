"""Saving a locked refund: only the fields that changed, audited against the row as it was locked.

As `payments.saving` does for payments: django-auditlog reads the row again before every save to find
what changed, but `lock_refund` has just read it under its lock, so it keeps a copy and `refund_save`
hands that copy to auditlog as the old version (`audit.entries.log_entry_write`): the same log entry,
without the second read, and an UPDATE of just those fields (`config.rows.update_row`). A new refund's
entry is written the same way (`refund_insert`). auditlog's receivers are Refund's only ones
(tests/refunds/test_saving.py); a refund not read by `lock_refund` is saved with `save()`.
"""

from collections.abc import Iterable

from auditlog.models import LogEntry
from django.db import DatabaseError

from audit.entries import as_read, keep_as_read, log_entry_write
from config.rows import insert_row, update_row
from refunds.models import Refund


def remember_as_locked(refund: Refund) -> Refund:
    """Keep a copy of the refund as it was read under its lock (the old side of the next audit diff)."""
    return keep_as_read(refund)


def refund_insert(refund: Refund) -> Refund:
    """INSERT a new refund with its creation's audit log entry: what `save()` and auditlog's receiver write.

    The entry goes through `log_entry_write`, so inside `config.rows.batched()` it waits for the batch's
    statement with the refund's history row and event; so does the refund's own row when its id was drawn
    before (`refunds.selectors.refundable_amount_and_new_id`).
    """
    insert_row(refund, deferred=refund.pk is not None)
    log_entry_write(action=LogEntry.Action.CREATE, instance=refund, old=None)
    return refund


def refund_save(refund: Refund, fields: Iterable[str]) -> Refund:
    """Save `fields` (and `updated_at`) of a refund the caller has locked, with one audit log entry of the change."""
    update_fields = list(dict.fromkeys([*fields, "updated_at"]))
    old = as_read(refund)
    if old is None:  # not read under `lock_refund`: auditlog reads the old row itself
        refund.save(update_fields=update_fields)
        return refund
    # Locked by this transaction, the row is there: inside `batched()` its UPDATE waits for the batch's statement.
    if update_row(refund, update_fields, where={"id": refund.pk}, deferred=True) == 0:
        raise DatabaseError("Save with update_fields did not affect any rows.")  # what save() says of a row gone
    log_entry_write(action=LogEntry.Action.UPDATE, instance=refund, old=old, fields=update_fields)
    return remember_as_locked(refund)
