"""Saving a locked payment: only the fields that changed, audited against the row as it was locked.

django-auditlog finds what changed by reading the row again before every save (one SELECT per save).
The row was just read under its lock, so `lock_payment` keeps a copy of it and `payment_save` hands
that copy to auditlog as the old version: the same log entry, without the second read.

A payment this request has just committed (created, then sent to the gateway) need not be read
again to be changed: `remember_as_committed` keeps the committed copy, and the next save is a
conditional UPDATE that only matches while the row is still that copy (same `updated_at`, status and
recorded operation; every write of a payment sets `updated_at`). The UPDATE takes the row lock, so
from then on the transaction holds the row exactly as if it had locked it first. When something
else changed the row meanwhile (a webhook, a worker, staff), the save raises `PaymentChanged` (inside
`batched()`, where the batch's statement runs, before any other statement) and the caller rolls its
transaction back and takes the locking path.

The money path writes a payment on every request, so these writes go through `config.rows` (SQL
compiled once per shape) instead of `save()`; what `save()` would add is done here: the blind indexes
of `Payment.save()`, and the audit log entry of auditlog's receivers (its only ones on Payment).
"""

from collections.abc import Iterable
from typing import Any

from auditlog.models import LogEntry
from django.db import DatabaseError
from django.db.models import Field

from audit.entries import as_read, keep_as_read, log_entry_write
from config.rows import insert_row, update_row
from payments.models import BLIND_INDEXES, Payment, keep_indexes

_UNLOCKED = "_as_committed"  # the copy is the committed row, but this transaction holds no lock on it yet


class PaymentChanged(Exception):
    """The payment's row is no longer the copy this request committed: lock it and read it again."""


def remember_as_locked(payment: Payment) -> Payment:
    """Keep a copy of the payment as it was read under its lock (the old side of the next audit diff)."""
    keep_as_read(payment)
    payment.__dict__.pop(_UNLOCKED, None)
    return payment


def remember_as_committed(payment: Payment) -> Payment:
    """Keep a copy of a payment this request has just committed: its next save is conditional (see above)."""
    remember_as_locked(payment)
    payment.__dict__[_UNLOCKED] = True
    return payment


def is_committed_copy(payment: Payment) -> bool:
    """True for a payment kept by `remember_as_committed` and not saved since (its next save is conditional)."""
    return bool(payment.__dict__.get(_UNLOCKED))


def payment_insert(payment: Payment) -> Payment:
    """INSERT a new payment with its creation's audit log entry: what `save()` and auditlog's receiver write.

    The row goes through `config.rows.insert_row` (an INSERT compiled once) instead of `save()`: the
    blind indexes `Payment.save()` sets are set here, and the log entry auditlog's `post_save` receiver
    would write is written here (auditlog's are Payment's only receivers: tests/payments/test_saving.py).
    A payment whose id is set already (drawn from the sequence) is inserted with the caller's `batched()` rows.
    """
    keep_indexes(payment, None, BLIND_INDEXES)
    # With its id drawn before (`KeyClaim.claim(reserve=Payment)`), the row can wait for the caller's batch.
    insert_row(payment, deferred=payment.pk is not None)
    log_entry_write(action=LogEntry.Action.CREATE, instance=payment, old=None)
    return payment


def payment_update(payment: Payment, **changes: Any) -> Payment:
    """Set `changes` on a payment the caller has locked and save just those fields (see `payment_save`)."""
    for name, value in changes.items():
        setattr(payment, name, value)
    return payment_save(payment, changes)


def payment_save(payment: Payment, fields: Iterable[str]) -> Payment:
    """Save `fields` (and `updated_at`) of a payment the caller has locked, with one audit log entry of the change."""
    update_fields = list(dict.fromkeys([*fields, "updated_at"]))
    old = as_read(payment)
    if old is None:  # not read under `lock_payment`: auditlog reads the old row itself
        payment.save(update_fields=update_fields)
        return payment
    update_fields = keep_indexes(payment, update_fields, BLIND_INDEXES) or update_fields  # what save() adds
    if payment.__dict__.get(_UNLOCKED):
        _save_if_unchanged(payment, old, update_fields)
    elif update_row(payment, _concrete(update_fields), where={"id": payment.pk}, deferred=True) == 0:
        # What save(update_fields=…) says of a row that is gone. (Inside `batched()` the UPDATE of the row this
        # transaction holds locked waits for the batch's statement, with the history row, event and audit entry.)
        raise DatabaseError("Save with update_fields did not affect any rows.")
    log_entry_write(action=LogEntry.Action.UPDATE, instance=payment, old=old, fields=update_fields)
    return remember_as_locked(payment)


def _save_if_unchanged(payment: Payment, old: Payment, update_fields: list[str]) -> None:
    """UPDATE the fields where the row is still `old` (it locks the row), or raise `PaymentChanged`.

    Inside `batched()` the UPDATE goes with the batch's statement (the audit entry, history row, event and
    the API answer written after it: the second transaction of a create is one statement) and the miss is
    raised there, at the next statement or the block's end, before anything else reads the row.

    :raises PaymentChanged: the row was changed since it was committed. The caller's transaction must end
        with it (rolled back: what the batch wrote beside the UPDATE goes with it).
    """
    where = {"id": payment.pk, "updated_at": old.updated_at, "status": old.status}
    where["pending_operation"] = old.pending_operation
    # `updated_at` takes the time now, as save()
    update_row(payment, _concrete(update_fields), where=where, deferred=True, on_miss=_changed)


def _changed() -> None:
    raise PaymentChanged()


def _concrete(names: list[str]) -> list[str]:
    return [name for name in names if isinstance(Payment._meta.get_field(name), Field)]
