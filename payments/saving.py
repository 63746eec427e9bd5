"""Saving a locked payment: only the fields that changed, audited against the row as it was locked.

django-auditlog finds what changed by reading the row again before every save (one SELECT per save).
The row was just read under its lock, so `lock_payment` keeps a copy of it and `payment_save` hands
that copy to auditlog as the old version: the same log entry, without the second read.
"""

import copy
from collections.abc import Iterable
from typing import Any

from auditlog import get_logentry_model
from auditlog.context import disable_auditlog
from auditlog.receivers import _create_log_entry  # private, but it is what applies the registration's field rules
from django.conf import settings

from payments.models import Payment

_AS_LOCKED = "_as_locked"


def remember_as_locked(payment: Payment) -> Payment:
    """Keep a copy of the payment as it was read under its lock (the old side of the next audit diff)."""
    old = copy.copy(payment)
    old._state = copy.copy(payment._state)
    old.__dict__.pop(_AS_LOCKED, None)
    payment.__dict__[_AS_LOCKED] = old
    return payment


def payment_update(payment: Payment, **changes: Any) -> Payment:
    """Set `changes` on a payment the caller has locked and save just those fields (see `payment_save`)."""
    for name, value in changes.items():
        setattr(payment, name, value)
    return payment_save(payment, changes)


def payment_save(payment: Payment, fields: Iterable[str]) -> Payment:
    """Save `fields` (and `updated_at`) of a payment the caller has locked, with one audit log entry of the change."""
    update_fields = list(dict.fromkeys([*fields, "updated_at"]))
    old = payment.__dict__.get(_AS_LOCKED)
    if old is None:  # not read under `lock_payment`: auditlog reads the old row itself
        payment.save(update_fields=update_fields)
        return payment
    with disable_auditlog():
        payment.save(update_fields=update_fields)
    _create_log_entry(
        action=get_logentry_model().Action.UPDATE,
        instance=payment,
        sender=Payment,
        diff_old=old,
        diff_new=payment,
        fields_to_check=update_fields,
        use_json_for_changes=getattr(settings, "AUDITLOG_STORE_JSON_CHANGES", False),
    )
    return remember_as_locked(payment)
