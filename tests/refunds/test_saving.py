"""`refunds.saving.refund_save`: the row and audit entry `save(update_fields=…)` writes, without reading it again."""

import pytest
from auditlog.models import LogEntry
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from refunds.locks import lock_refund
from refunds.models import Refund
from refunds.saving import refund_save
from tests.refunds.factories import RefundFactory

pytestmark = pytest.mark.django_db


def test_auditlogs_receivers_are_the_only_ones_refund_save_stands_in_for():
    # A new receiver on Refund would be skipped by refund_save: this test names what it replaces.
    assert [r.__name__ for r in pre_save._live_receivers(Refund)[0]] == ["log_update"]
    assert [r.__name__ for r in post_save._live_receivers(Refund)[0]] == ["log_create"]


def _change(refund: Refund) -> None:
    refund.status = "succeeded"
    refund.gateway_reference = f"re_gw_{refund.pk}"
    refund.attempts = 3  # excluded from the audit log: written, not logged


def test_a_locked_refund_is_saved_and_audited_as_save_would_without_a_second_read():
    ours, theirs = RefundFactory(), RefundFactory()

    with transaction.atomic():
        mine = lock_refund(ours.pk)
        _change(mine)
        with CaptureQueriesContext(connection) as queries:
            refund_save(mine, ["status", "gateway_reference", "attempts"])
    with transaction.atomic():
        other = lock_refund(theirs.pk)
        _change(other)
        other.save(update_fields=["status", "gateway_reference", "attempts", "updated_at"])

    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements == ["UPDATE", "INSERT"]  # no SELECT of the old row
    stored = Refund.objects.get(pk=ours.pk)
    assert (stored.status, stored.gateway_reference, stored.attempts) == ("succeeded", f"re_gw_{ours.pk}", 3)
    assert stored.updated_at > ours.updated_at
    entry = LogEntry.objects.get_for_object(stored).get(action=LogEntry.Action.UPDATE)
    expected = LogEntry.objects.get_for_object(theirs).get(action=LogEntry.Action.UPDATE)
    assert set(entry.changes_dict) == set(expected.changes_dict) == {"status", "gateway_reference"}
    assert entry.changes_dict["status"] == expected.changes_dict["status"] == ["pending", "succeeded"]


def test_a_second_save_is_audited_against_the_first_one():
    refund = RefundFactory()
    with transaction.atomic():
        locked = lock_refund(refund.pk)
        locked.status = "succeeded"
        refund_save(locked, ["status"])
        locked.needs_attention = True
        refund_save(locked, ["needs_attention"])

    entries = LogEntry.objects.get_for_object(refund).filter(action=LogEntry.Action.UPDATE).order_by("pk")
    assert [set(entry.changes_dict) for entry in entries] == [{"status"}, {"needs_attention"}]


def test_a_refund_not_read_under_its_lock_is_saved_with_save():
    refund = RefundFactory()
    refund.needs_attention = True
    with CaptureQueriesContext(connection) as queries:
        refund_save(refund, ["needs_attention"])
    assert [q["sql"].split()[0] for q in queries.captured_queries][0] == "SELECT"  # auditlog reads the old row
    assert Refund.objects.get(pk=refund.pk).needs_attention is True
    assert LogEntry.objects.get_for_object(refund).filter(action=LogEntry.Action.UPDATE).count() == 1


def test_a_new_refund_and_its_creation_entry_are_those_create_writes(captured_payment):
    from payments.models import Payment
    from refunds.saving import refund_insert

    payment = Payment.objects.get(public_id=captured_payment(amount=10_000)["id"])
    fields = {"payment": payment, "amount": 100, "currency": "usd", "reason": "requested_by_customer"}

    made = Refund.objects.create(**fields, metadata={"n": "1"})
    with CaptureQueriesContext(connection) as queries:
        fast = refund_insert(Refund(**fields, metadata={"n": "1"}))

    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT", "INSERT"]  # the refund, its entry
    ours, theirs = Refund.objects.get(pk=fast.pk), Refund.objects.get(pk=made.pk)
    differs = {"id", "public_id", "created_at", "updated_at"}
    assert {f.attname: getattr(ours, f.attname) for f in Refund._meta.concrete_fields if f.attname not in differs} == {
        f.attname: getattr(theirs, f.attname) for f in Refund._meta.concrete_fields if f.attname not in differs
    }
    entry, expected = LogEntry.objects.get_for_object(ours).get(), LogEntry.objects.get_for_object(theirs).get()
    assert entry.action == expected.action == LogEntry.Action.CREATE
    skip = {"id", "public_id", "created_at"}
    assert {k: v for k, v in entry.changes_dict.items() if k not in skip} == {
        k: v for k, v in expected.changes_dict.items() if k not in skip
    }
    assert entry.changes_dict["public_id"] == ["None", fast.public_id]
