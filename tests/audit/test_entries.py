"""`audit.entries.log_entry_write`: the entry django-auditlog's own receivers write, through a compiled INSERT."""

import copy

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from auditlog.signals import pre_log

from audit.entries import log_entry_write
from payments.models import Payment
from tests.accounts.factories import UserFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

COMPARED = ("action", "content_type_id", "object_repr", "changes", "actor_id", "remote_addr", "cid")


def _compared(entry: LogEntry) -> dict:
    return {name: getattr(entry, name) for name in COMPARED}


def test_an_update_entry_is_the_one_auditlog_writes_for_save_with_update_fields_actor_included():
    staff = UserFactory(is_staff=True)
    ours, theirs = PaymentFactory(requires_confirmation=True), PaymentFactory(requires_confirmation=True)
    with set_actor(staff, remote_addr="198.51.100.4"):
        theirs.status, theirs.failure_code = "failed", "card_declined"
        theirs.save(update_fields=["status", "failure_code", "updated_at"])
        old = copy.copy(ours)
        ours.status, ours.failure_code = "failed", "card_declined"
        entry = log_entry_write(
            action=LogEntry.Action.UPDATE, instance=ours, old=old, fields=["status", "failure_code", "updated_at"]
        )

    expected = LogEntry.objects.get_for_object(theirs).get(action=LogEntry.Action.UPDATE)
    assert entry is not None
    assert entry.pk == LogEntry.objects.get_for_object(ours).get(action=LogEntry.Action.UPDATE).pk
    got, want = _compared(LogEntry.objects.get(pk=entry.pk)), _compared(expected)
    assert got.pop("object_repr") == ours.public_id
    assert want.pop("object_repr") == theirs.public_id
    assert got == want
    assert LogEntry.objects.get(pk=entry.pk).changes_dict == {
        "status": ["requires_confirmation", "failed"],
        "failure_code": ["", "card_declined"],
    }
    assert (entry.actor, entry.remote_addr) == (staff, "198.51.100.4")


def test_nothing_changed_writes_nothing():
    payment = PaymentFactory()
    before = LogEntry.objects.count()

    assert log_entry_write(action=LogEntry.Action.UPDATE, instance=payment, old=copy.copy(payment)) is None
    assert LogEntry.objects.count() == before


def test_a_pre_log_receiver_can_veto_the_entry_as_it_can_auditlogs():
    payment = PaymentFactory()
    before = LogEntry.objects.count()

    def veto(sender, instance, action, **kwargs):
        return False

    pre_log.connect(veto, sender=Payment)
    try:
        entry = log_entry_write(action=LogEntry.Action.CREATE, instance=payment, old=None)
    finally:
        pre_log.disconnect(veto, sender=Payment)

    assert entry is None
    assert LogEntry.objects.count() == before
