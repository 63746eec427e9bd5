"""django-auditlog entries for rows saved without `save()` (`payments.saving`), written as auditlog writes them.

auditlog writes an entry from its `post_save`/`pre_save` receivers (`auditlog.receivers._create_log_entry`):
`pre_log`, the diff, `LogEntry.objects.log_create`, `post_log`. `log_entry_write` does the same steps
with auditlog's own diff (for a creation, the same diff from `audit.diff.creation_diff`) and `log_create`
(so the entry's fields, its correlation id and the actor the auditlog middleware's context sets are the
same), through a manager whose `create` is one INSERT compiled once (`config.rows.insert`, which sends the
`pre_save` the actor context listens to).

`keep_as_read` keeps a copy of a row just read under its lock, and `as_read` gives it back as the old side
of the next entry, so the save need not read the row again as auditlog's receiver would
(`payments.saving`, `refunds.saving`).
"""

import copy
from functools import cache
from typing import Any, TypeVar

from auditlog import get_logentry_model
from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry, LogEntryManager
from auditlog.signals import post_log, pre_log
from django.conf import settings
from django.db.models import Model

from audit.diff import creation_diff
from config.rows import insert

M = TypeVar("M", bound=Model)
_AS_READ = "_as_locked"  # where `keep_as_read` keeps the copy, on the instance itself


def keep_as_read(instance: M) -> M:
    """Keep a copy of `instance` as it is now (read under its lock): the old side of its next entry (`as_read`)."""
    old = copy.copy(instance)
    old._state = copy.copy(instance._state)
    old.__dict__.pop(_AS_READ, None)
    instance.__dict__[_AS_READ] = old
    return instance


def as_read(instance: M) -> M | None:
    """The copy `keep_as_read` kept of `instance`, or None."""
    return instance.__dict__.get(_AS_READ)


class _InsertingManager(LogEntryManager):
    """auditlog's manager, with `create` as one compiled INSERT (signals sent, as `save()` sends them)."""

    def create(self, **kwargs: Any) -> Any:
        return insert(self.model(**kwargs), deferred=True)  # inside `config.rows.batched()`, with the batch


@cache
def _entries() -> _InsertingManager:
    manager = _InsertingManager()
    manager.model = get_logentry_model()
    return manager


def log_entry_write(
    *, action: int, instance: Model, old: Model | None, fields: list[str] | None = None
) -> LogEntry | None:
    """The entry auditlog's receiver writes for saving `instance` (from `old`; None for a creation), or None.

    `fields` limits the diff as `save(update_fields=…)` does. Raises what the write raises, after `post_log`.
    """
    sender = type(instance)
    pre_log_results = pre_log.send(sender, instance=instance, action=action)
    if any(result is False for _receiver, result in pre_log_results):
        return None
    error: BaseException | None = None
    entry = None
    changes = None
    use_json = getattr(settings, "AUDITLOG_STORE_JSON_CHANGES", False)
    try:
        if old is None and fields is None:  # a creation: the same diff, the model's part worked out once
            changes = creation_diff(instance, use_json_for_changes=use_json)
        else:
            changes = model_instance_diff(old, instance, fields_to_check=fields, use_json_for_changes=use_json)
        if changes:
            entry = _entries().log_create(instance, action=action, changes=changes, force_log=False)
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after post_log, as auditlog does
        error = exc
    finally:
        if entry or error:
            post_log.send(
                sender,
                instance=instance,
                instance_old=old,
                action=action,
                error=error,
                pre_log_results=pre_log_results,
                changes=changes,
                log_entry=entry,
                log_created=entry is not None,
                use_json_for_changes=use_json,
            )
    if error is not None:
        raise error
    return entry
